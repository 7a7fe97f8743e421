"""Domain errors: every refused command says which case, in what state, and what was tried."""

from __future__ import annotations

from uuid import UUID


class DomainError(Exception):
    """A command the case cannot take. The API turns these into 409/422 problem details."""


class IllegalTransition(DomainError):  # noqa: N818 - the domain name the API and docs use
    """The action is not allowed in the current state (or its guard does not hold)."""

    def __init__(
        self,
        case_id: UUID,
        state: str,
        action: str,
        *,
        why: str | None = None,
        task_id: UUID | None = None,
    ) -> None:
        self.case_id = case_id
        self.state = state
        self.action = action
        self.why = why
        self.task_id = task_id
        subject = f"task {task_id} of case {case_id}" if task_id else f"case {case_id}"
        message = f"{subject} is {state!r}: cannot {action!r}"
        super().__init__(f"{message}: {why}" if why else message)


class InvalidCommand(DomainError, ValueError):  # noqa: N818 - reads as the domain says it
    """The command is allowed in this state but its content is wrong (bad score, unknown task)."""
