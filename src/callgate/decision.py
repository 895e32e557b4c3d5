"""Decision: the outcome of one evaluation, as every engine (native, wasm) and the audit
trail hand it out. The result code's layout is the core's (csrc/callgate.h): decision in
bits 0-1 (DECISIONS order), approvals required in bits 2-3, deciding rule + 1 above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Union

if TYPE_CHECKING:   # types only: nothing here exists at run time (decision.py is imported by `import callgate`)
    from typing import Literal, Protocol

    # a request as the core read it, the very bytes: the packed request, or the JSON form's
    # tool, arguments and context (Engine.evaluate and evaluate_json; the audit trail's items)
    Request = Union[tuple[Literal["request"], bytes], tuple[Literal["json"], bytes, bytes, bytes]]

    class Explainer(Protocol):
        """What explains a decision: a policy state (native or wasm) building the reason
        from the request it decided, or an Approved."""

        def reason_for(self, tool: Any, in0: Any, in1: Any) -> str:
            """The reason text for (tool, in0, in1), the rest of the decision's `_why`."""

    # a Decision's `_why`: the reason once known, or (explainer, tool, in0, in1) to build it
    Why = Union[str, tuple["Explainer", Any, Any, Any]]

DECISIONS = ("Deny", "Allow", "Elevate")   # the core's decision codes 0, 1, 2
DENY, ALLOW, ELEVATE = 0, 1, 2


class Decision:
    """The outcome of one evaluation.

    `decision` is "Allow", "Deny" or "Elevate"; `allowed` is True only for Allow;
    `approvals_required` is the number of approvals an Elevate needs (0 otherwise);
    `rule` is the 0-based index of the deciding rule in the policy, or None when a
    default (a tier default or default_action) decided; `reason` is the exact,
    human-readable why."""

    # the core's result code (decision in bits 0-1, approvals in 2-3, rule + 1 above) and
    # how to explain it: making a Decision costs two stores. `_by` (the approvers of an
    # approved call) is set only on the decisions approvals made
    __slots__ = ("_rc", "_why", "_by")
    _rc: int
    _why: Why
    _by: tuple[str, ...]

    def __init__(self, decision: str, rule: Optional[int], why: Why,
                 approvals_required: int = 0, approved_by: tuple[str, ...] = ()) -> None:
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
        if (decision == "Elevate") != (approvals_required in (1, 2, 3)) or approvals_required not in (0, 1, 2, 3):
            raise ValueError("approvals_required must be 1-3 for Elevate and 0 otherwise")
        self._rc = (0 if rule is None else rule + 1) << 4 | approvals_required << 2 | DECISIONS.index(decision)
        self._why = why  # (source, tool, in0, in1), or the reason once known
        if approved_by:
            self._by = tuple(approved_by)

    @property
    def decision(self) -> str:
        """"Allow", "Deny" or "Elevate"."""
        return DECISIONS[self._rc & 3]

    @property
    def rule(self) -> Optional[int]:
        """The 0-based index of the deciding rule in the policy; None when a default decided."""
        return (self._rc >> 4) - 1 if self._rc >= 16 else None

    @property
    def approvals_required(self) -> int:
        """The approvals an Elevate needs (1-3); 0 for Allow and Deny."""
        return self._rc >> 2 & 3

    @property
    def allowed(self) -> bool:
        """True only for Allow."""
        return self._rc & 3 == 1

    @property
    def approved_by(self) -> tuple[str, ...]:
        """The approvers whose signed approvals made this Allow of an Elevate (in the order
        given); () for every other decision."""
        return getattr(self, "_by", ())

    @property
    def reason(self) -> str:
        """The exact, human-readable why; built (by whoever decided) when first read."""
        why = self._why
        if type(why) is str:
            return why
        # mypy narrows `type(why) is str` only where it holds, not after the return above
        source: Explainer
        source, tool, in0, in1 = why  # type: ignore[str-unpack, assignment]  # whoever decided explains (native or wasm)
        self._why = reason = source.reason_for(tool, in0, in1)
        return reason

    def to_dict(self) -> dict[str, Any]:
        """The wasm ABI's response shape: decision, reason, rule (and approvals_required
        for an Elevate)."""
        out = {"decision": self.decision, "reason": self.reason, "rule": self.rule}
        if self._rc & 3 == ELEVATE:
            out["approvals_required"] = self.approvals_required
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return (self._rc, self.reason) == (other._rc, other.reason)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        extra = f", approvals_required={self.approvals_required}" if self.approvals_required else ""
        return f"Decision({self.decision!r}, rule={self.rule!r}, reason={self.reason!r}{extra})"


class MadeDecision(Decision):
    """A Decision as the engines make it: the same object without the validating
    constructor, so making one runs no Python frame (`MadeDecision()` is C all the way
    down). The maker sets `_rc` (the core's result code) and `_why` (what explains it)."""

    __slots__ = ()
    if TYPE_CHECKING:   # (mypy reads `object.__init__` as an untyped constructor)
        def __init__(self) -> None: ...
    else:
        __init__ = object.__init__


class Approved:
    """What explains an Allow that signed approvals made of an Elevate: its reason, the
    approvers counted (in the order given) and the approvals the Elevate required. It stands
    where a policy state would in a Decision's explanation, so the audit trail records who
    approved as data."""

    __slots__ = ("reason", "approvers", "required")

    def __init__(self, reason: str, approvers: tuple[str, ...], required: int) -> None:
        self.reason, self.approvers, self.required = reason, tuple(approvers), required

    def reason_for(self, tool: object, in0: object, in1: object) -> str:
        """The reason (the request is not needed: it was decided already)."""
        return self.reason
