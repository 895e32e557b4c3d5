"""The demo CRM's data and its resource resolver (no MCP here: the proxy imports this).

`resolve(tool, arguments)` is what `--resolver callgate.demo.crm:resolve` calls before each
decision: it looks the record up and returns its resource attributes (the owner of a
customer), so the policy can compare the caller with the owner.
"""

from __future__ import annotations

from typing import Any, Mapping

CUSTOMERS: dict[str, dict[str, Any]] = {
    "C-1042": {"name": "Acme Corp", "email": "billing@acme.example", "phone": "+1-555-0142",
               "ssn_last4": "4821", "owner_id": "mgr-001", "status": "active"},
    "C-2038": {"name": "Globex Ltd", "email": "ap@globex.example", "phone": "+1-555-0238",
               "ssn_last4": "9034", "owner_id": "mgr-001", "status": "active"},
    "C-9001": {"name": "Initech", "email": "finance@initech.example", "phone": "+1-555-9001",
               "ssn_last4": "1177", "owner_id": "mgr-002", "status": "inactive"},
}
ORDERS: dict[str, dict[str, Any]] = {
    "ORD-8821": {"customer_id": "C-1042", "total": 249.99},
    "ORD-9910": {"customer_id": "C-2038", "total": 1899.00},
    "ORD-5533": {"customer_id": "C-9001", "total": 89.50},
}


def resolve(tool: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Resource attributes for a call: the owner of the customer it names (directly, or
    through an order). Unknown records resolve to nothing, which grants nothing."""
    customer_id = arguments.get("customer_id")
    if not isinstance(customer_id, str):
        # (a str: checked on this line, on a second get(), which does not narrow the first)
        order = ORDERS.get(arguments.get("order_id")) if isinstance(arguments.get("order_id"), str) else None  # type: ignore[arg-type]
        customer_id = order["customer_id"] if order else None
    record = CUSTOMERS.get(customer_id) if customer_id else None
    return {"owner_id": record["owner_id"]} if record else {}
