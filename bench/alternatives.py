"""The CRM policy expressed in the engines a user might pick instead of callgate, for the
benchmark's comparison rows: a hand-written Python function, Cedar (cedarpy) and Casbin
(pycasbin). Each exposes `decide(tool, args, role, agent, resource) -> bool`.
Optional ones return None from their factory when the package is not installed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable, Optional

Decide = Callable[[str, dict, str, dict, dict], bool]


def handwritten() -> Decide:
    """What a developer writes by hand: dict lookups and ifs, no policy at all."""

    def is_num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def decide(tool: str, args: dict, role: str, agent: dict, resource: dict) -> bool:
        if tool in ("view_customer", "update_customer"):
            return role in ("agent", "manager", "admin")
        if tool == "process_refund":
            cap = 500 if role == "agent" else 2000 if role in ("manager", "admin") else None
            amount = args.get("amount")
            return cap is not None and is_num(amount) and amount <= cap
        if role not in ("manager", "admin") and not (tool == "bulk_update" and role == "admin"):
            return False
        if tool == "delete_customer":
            return agent.get("user_id") == resource.get("owner_id") or agent.get("role") == "admin"
        if tool == "access_pii":
            return agent.get("mfa_verified") is not None
        if tool == "export_data":
            return agent.get("env") == "production"
        if tool == "bulk_update":
            return role == "admin" and agent.get("env") == "production" and agent.get("mfa_verified") is not None
        return False

    return decide


CEDAR_POLICIES = """
permit(principal, action == Action::"view_customer", resource) when { ["agent","manager","admin"].contains(context.role) };
permit(principal, action == Action::"update_customer", resource) when { ["agent","manager","admin"].contains(context.role) };
permit(principal, action == Action::"delete_customer", resource) when { ["manager","admin"].contains(context.role) &&
  ((context.agent has user_id && context.resource has owner_id && context.agent.user_id == context.resource.owner_id) ||
   (context.agent has role && context.agent.role == "admin")) };
permit(principal, action == Action::"process_refund", resource) when { context.role == "agent" && context.args has amount && context.args.amount <= 500 };
permit(principal, action == Action::"process_refund", resource) when { ["manager","admin"].contains(context.role) && context.args has amount && context.args.amount <= 2000 };
permit(principal, action == Action::"access_pii", resource) when { ["manager","admin"].contains(context.role) && context.agent has mfa_verified };
permit(principal, action == Action::"export_data", resource) when { ["manager","admin"].contains(context.role) && context.agent has env && context.agent.env == "production" };
permit(principal, action == Action::"bulk_update", resource) when { context.role == "admin" && context.agent has env && context.agent.env == "production" && context.agent has mfa_verified };
"""


def cedar() -> Optional[Decide]:
    """Cedar through cedarpy (policies as text, the request as JSON-like dicts)."""
    try:
        import cedarpy
    except ImportError:
        return None

    policies = cedarpy.PolicySet.from_str(CEDAR_POLICIES)  # parsed once: its fastest path
    entities = cedarpy.Entities.from_json_str("[]")

    def whole(v: Any) -> Any:  # Cedar has integers only: 1899.0 is passed as 1899
        return int(v) if isinstance(v, float) and v.is_integer() else v

    def decide(tool: str, args: dict, role: str, agent: dict, resource: dict) -> bool:
        request = {"principal": 'User::"caller"', "action": f'Action::"{tool}"', "resource": 'Thing::"target"',
                   "context": {"role": role, "args": {k: whole(v) for k, v in args.items()},
                               "agent": agent, "resource": resource}}
        return cedarpy.is_authorized(request, policies, entities).allowed

    return decide


CASBIN_MODEL = """
[request_definition]
r = role, tool, args, agent, res

[policy_definition]
p = role, tool, rule

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.role == p.role && r.tool == p.tool && eval(p.rule)
"""

CASBIN_RULES = [
    *[(role, tool, "True") for tool in ("view_customer", "update_customer") for role in ("agent", "manager", "admin")],
    *[(role, "delete_customer", "r.agent.user_id == r.res.owner_id or r.agent.role == 'admin'") for role in ("manager", "admin")],
    ("agent", "process_refund", "r.args.amount <= 500"),
    *[(role, "process_refund", "r.args.amount <= 2000") for role in ("manager", "admin")],
    *[(role, "access_pii", "r.agent.mfa_verified != None") for role in ("manager", "admin")],
    *[(role, "export_data", "r.agent.env == 'production'") for role in ("manager", "admin")],
    ("admin", "bulk_update", "r.agent.env == 'production' and r.agent.mfa_verified != None"),
]


def casbin() -> Optional[Decide]:
    """Casbin (pycasbin) with an ABAC matcher evaluating each rule's expression."""
    try:
        import casbin as casbin_mod
        from casbin import persist
    except ImportError:
        return None

    class Adapter(persist.Adapter):
        def load_policy(self, model) -> None:
            for role, tool, rule in CASBIN_RULES:
                model.add_policy("p", "p", [role, tool, rule])

    model = casbin_mod.Enforcer.new_model(text=CASBIN_MODEL) if hasattr(casbin_mod.Enforcer, "new_model") else None
    if model is None:
        from casbin import model as cmodel
        model = cmodel.Model()
        model.load_model_from_text(CASBIN_MODEL)
    enforcer = casbin_mod.Enforcer(model, Adapter())

    class Attrs(SimpleNamespace):
        def __getattr__(self, name: str) -> Any:  # a missing attribute reads as None
            return None

    def decide(tool: str, args: dict, role: str, agent: dict, resource: dict) -> bool:
        try:
            return bool(enforcer.enforce(role, tool, Attrs(**args), Attrs(**agent), Attrs(**resource)))
        except Exception:  # e.g. comparing a missing amount with a number: deny
            return False

    return decide
