"""The example CRM MCP server, built with the official `mcp` SDK and no auth code at all:
authorization is callgate's job, in front of it (the proxy) or around it (guard()).

    python -m callgate.demo.crm_server [--journal FILE]

--journal appends one JSON line per tool call that actually ran, so a test (or a doubting
reader) can check that denied calls never reached the server.
"""

from __future__ import annotations

import argparse
import copy
import os
from typing import Any, Optional

import orjson

from . import crm

JOURNAL_ENV = "CALLGATE_CRM_JOURNAL"


def build_server(journal: Optional[str] = None) -> Any:
    """An MCPServer with the seven CRM tools over a private copy of the mock data."""
    from mcp.server.mcpserver import MCPServer

    customers = copy.deepcopy(crm.CUSTOMERS)
    orders = copy.deepcopy(crm.ORDERS)
    server = MCPServer("callgate-demo-crm", instructions="A mock CRM: customers C-1042, C-2038, C-9001.")

    def ran(tool: str, args: dict[str, Any]) -> None:
        if journal:
            with open(journal, "ab") as f:
                f.write(orjson.dumps({"tool": tool, "args": args}) + b"\n")

    def customer(customer_id: str) -> dict[str, Any]:
        if customer_id not in customers:
            raise ValueError(f"no customer {customer_id}")
        return customers[customer_id]

    @server.tool(description="Show a customer's record (without PII).")
    def view_customer(customer_id: str) -> str:
        ran("view_customer", {"customer_id": customer_id})
        c = customer(customer_id)
        return f"{customer_id}: {c['name']} ({c['status']}), owner {c['owner_id']}"

    @server.tool(description="Change one field of a customer's record.")
    def update_customer(customer_id: str, field: str = "status", value: str = "active") -> str:
        ran("update_customer", {"customer_id": customer_id, "field": field, "value": value})
        customer(customer_id)[field] = value
        return f"{customer_id}: {field} set to {value!r}"

    @server.tool(description="Delete a customer.")
    def delete_customer(customer_id: str) -> str:
        ran("delete_customer", {"customer_id": customer_id})
        c = customers.pop(customer_id, None)
        if c is None:
            raise ValueError(f"no customer {customer_id}")
        return f"{customer_id} ({c['name']}) deleted"

    @server.tool(description="Refund (part of) an order.")
    def process_refund(order_id: str, amount: float) -> str:
        ran("process_refund", {"order_id": order_id, "amount": amount})
        order = orders.get(order_id)
        if order is None:
            raise ValueError(f"no order {order_id}")
        return f"refunded ${amount:,.2f} on {order_id} (order total ${order['total']:,.2f})"

    @server.tool(description="Show a customer's personal data (email, phone, SSN).")
    def access_pii(customer_id: str) -> str:
        ran("access_pii", {"customer_id": customer_id})
        c = customer(customer_id)
        return f"{customer_id}: {c['email']}, {c['phone']}, SSN ***-**-{c['ssn_last4']}"

    @server.tool(description="Export a report.")
    def export_data(report_type: str) -> str:
        ran("export_data", {"report_type": report_type})
        return f"exported {report_type!r}: {len(customers)} customers, {len(orders)} orders"

    @server.tool(description="Update every customer matching a filter.")
    def bulk_update(filter: str, field: str = "status", value: str = "archived") -> str:
        ran("bulk_update", {"filter": filter, "field": field, "value": value})
        key, _, want = filter.partition(":")
        hits = [cid for cid, c in customers.items() if str(c.get(key)) == want]
        for cid in hits:
            customers[cid][field] = value
        return f"{len(hits)} customer(s) matching {filter!r}: {field} set to {value!r}"

    return server


def main(argv: Optional[list[str]] = None) -> None:
    """Serve the CRM over stdio (`--journal FILE`: append each executed call to it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journal", default=os.environ.get(JOURNAL_ENV))
    args = parser.parse_args(argv)
    build_server(args.journal).run("stdio")


if __name__ == "__main__":
    main()
