"""The stack program through Pulumi's Automation API: what `fjmig infra` and `fjmig run --stack` call.

The program runs inline (`infra.program.main` in this process, which serves the language
runtime to the engine), so no Python language host is needed; the project directory supplies
`Pulumi.yaml` and the stack's config (`Pulumi.<stack>.yaml`), and the state backend and the
credentials come from the environment, as for `pulumi` itself (docs/INFRA.md). A stack whose plans
or config do not validate is refused before the engine starts.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .addresses import stack_config
from .errors import InfraError
from .settings import PROJECT_ROOT, Settings, parse_settings

OUTPUTS_DIR = Path(".fjmig") / "stacks"
"""Where `fjmig infra up|outputs` and `fjmig run --stack` keep a stack's outputs (relative to the cwd)."""
REQUIRED_OUTPUTS = ("targets", "tenancies", "scope")


@dataclass(frozen=True)
class Step:
    """One thing the engine reports, reduced to what a progress display needs."""

    kind: str  # start | done | failed | diagnostic
    op: str = ""  # create | update | same | delete | replace | ... (start/done)
    type: str = ""
    name: str = ""
    message: str = ""


@dataclass
class Result:
    """What a preview or an update did: the engine's change counts, and the stack outputs after `up`."""

    stack: str
    operation: str
    changes: dict[str, int]
    seconds: float
    outputs: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    """Engine options that `pulumi preview|up` also take."""

    exclude: tuple[str, ...] = ()
    exclude_dependents: bool = False
    policy_packs: tuple[str, ...] = ()


def project_name(project_dir: Path) -> str:
    path = project_dir / "Pulumi.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InfraError(f"{path}: cannot read the Pulumi project: {exc}") from None
    name = data.get("name") if isinstance(data, dict) else None
    if not name:
        raise InfraError(f"{path}: the Pulumi project has no name")
    return str(name)


def check_stack(stack: str, project_dir: Path = PROJECT_ROOT) -> Settings:
    """The stack's settings, after the checks the program makes before building anything: the
    config of `Pulumi.<stack>.yaml`, the plans (`fjmig validate`'s structural rules), the address
    plan. Raises InfraError naming the file/line and rule, or the config key."""
    from .program import plan_stack

    if not (project_dir / f"Pulumi.{stack}.yaml").is_file():
        known = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))
        raise InfraError(f"no stack {stack!r}: {project_dir}/Pulumi.{stack}.yaml does not exist "
                         f"(stacks: {', '.join(known) or 'none'})")
    settings = parse_settings(stack_config(stack, project_dir), project_dir)
    plan_stack(settings)
    return settings


def _inline_program(project_dir: Path) -> Callable[[], None]:
    from .program import main

    return functools.partial(main, project_dir)


def _workspace_options(project_dir: Path) -> Any:
    from pulumi import automation as auto

    # PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK is honoured by PulumiCommand itself; never install a CLI.
    command = auto.PulumiCommand()
    return auto.LocalWorkspaceOptions(work_dir=str(project_dir), pulumi_command=command)


def open_stack(stack: str, project_dir: Path = PROJECT_ROOT, *, create: bool = True) -> Any:
    """The stack, selected (or created, for preview and up) in the project's workspace."""
    from pulumi import automation as auto

    try:
        opts = _workspace_options(project_dir)
        name = project_name(project_dir)
        program = _inline_program(project_dir)
        if create:
            return auto.create_or_select_stack(stack, project_name=name, program=program, opts=opts)
        return auto.select_stack(stack, project_name=name, program=program, opts=opts)
    except auto.StackNotFoundError:
        raise InfraError(f"stack {stack!r} has no state in this backend: run `fjmig infra up --stack {stack}` "
                         "first (or check PULUMI_BACKEND_URL / `pulumi login`)") from None
    except auto.CommandError as exc:
        raise InfraError(f"pulumi: {_command_error(exc)}") from None
    except FileNotFoundError as exc:
        raise InfraError(f"the pulumi CLI is not installed ({exc}); see docs/INFRA.md") from None


def selected_stack(project_dir: Path = PROJECT_ROOT) -> str:
    """The stack `pulumi stack select` selected for the project, for commands run without --stack."""
    from pulumi import automation as auto

    try:
        workspace = auto.LocalWorkspace(work_dir=str(project_dir), pulumi_command=auto.PulumiCommand())
        current = workspace.stack()
    except auto.CommandError as exc:
        raise InfraError(f"pulumi: {_command_error(exc)}") from None
    if not current:
        raise InfraError("no stack selected: pass --stack S (or `pulumi stack select S`)")
    return str(current.name)


def _command_error(exc: Exception) -> str:
    stderr = getattr(exc, "stderr", "") or str(exc)
    lines = [line for line in str(stderr).splitlines() if line.strip()]
    return "\n".join(lines[-10:])


class _Events:
    """Engine events -> `Step`s for the caller, and the error diagnostics for the result."""

    def __init__(self, on_step: Callable[[Step], None] | None) -> None:
        self.on_step = on_step or (lambda step: None)
        self.errors: list[str] = []

    def __call__(self, event: Any) -> None:
        if event.resource_pre_event is not None:
            meta = event.resource_pre_event.metadata
            self.on_step(Step("start", _op(meta.op), meta.type, _name(meta.urn)))
        elif event.res_outputs_event is not None:
            meta = event.res_outputs_event.metadata
            self.on_step(Step("done", _op(meta.op), meta.type, _name(meta.urn)))
        elif event.res_op_failed_event is not None:
            meta = event.res_op_failed_event.metadata
            self.on_step(Step("failed", _op(meta.op), meta.type, _name(meta.urn)))
        elif event.diagnostic_event is not None and event.diagnostic_event.severity == "error":
            message = event.diagnostic_event.message.strip()
            if message:
                self.errors.append(message)
                self.on_step(Step("diagnostic", message=message, name=_name(event.diagnostic_event.urn or "")))


def _op(op: Any) -> str:
    return str(getattr(op, "value", op))


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if urn else ""


def _changes(summary: Mapping[str, int] | None) -> dict[str, int]:
    return {str(getattr(k, "value", k)): int(v) for k, v in (summary or {}).items()}


def preview(stack: str, project_dir: Path = PROJECT_ROOT, options: Options = Options(),
            on_step: Callable[[Step], None] | None = None) -> Result:
    """`pulumi preview` of the stack, after `check_stack`."""
    result, seconds = _operate("preview", stack, project_dir, options, on_step)
    return Result(stack, "preview", _changes(result.change_summary), seconds)


def up(stack: str, project_dir: Path = PROJECT_ROOT, options: Options = Options(),
       on_step: Callable[[Step], None] | None = None) -> Result:
    """`pulumi up` of the stack, after `check_stack`; the result carries the stack outputs."""
    result, seconds = _operate("up", stack, project_dir, options, on_step)
    outputs = {key: value.value for key, value in result.outputs.items()}
    return Result(stack, "up", _changes(result.summary.resource_changes), seconds, outputs)


def _operate(operation: str, stack: str, project_dir: Path, options: Options,
             on_step: Callable[[Step], None] | None) -> tuple[Any, float]:
    """Run the stack's `preview` or `up` with the options; its Automation API result and seconds."""
    from pulumi import automation as auto

    check_stack(stack, project_dir)
    handle = open_stack(stack, project_dir)
    events = _Events(on_step)
    start = time.monotonic()
    try:
        result = getattr(handle, operation)(on_event=events, exclude=list(options.exclude) or None,
                                            exclude_dependents=options.exclude_dependents or None,
                                            policy_packs=list(options.policy_packs) or None, color="never")
    except auto.CommandError as exc:
        raise InfraError(_failure(operation, stack, events.errors, exc)) from None
    return result, time.monotonic() - start


def _failure(operation: str, stack: str, errors: Sequence[str], exc: Exception) -> str:
    detail = "\n".join(dict.fromkeys(errors)) or _command_error(exc)
    return f"pulumi {operation} of {stack} failed:\n{detail}"


def outputs(stack: str, project_dir: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The stack's outputs from its state (what `pulumi stack output --json` prints)."""
    from pulumi import automation as auto

    handle = open_stack(stack, project_dir, create=False)
    try:
        values = {key: value.value for key, value in handle.outputs().items()}
    except auto.CommandError as exc:
        raise InfraError(f"pulumi stack output of {stack}: {_command_error(exc)}") from None
    missing = [key for key in REQUIRED_OUTPUTS if key not in values]
    if missing:
        raise InfraError(f"stack {stack!r} has no {', '.join(missing)} output: run `fjmig infra up --stack {stack}`")
    return values


def outputs_path(stack: str, directory: Path = OUTPUTS_DIR) -> Path:
    return directory / f"{stack}.json"


def write_outputs(values: Mapping[str, Any], path: Path) -> Path:
    """Write outputs as `fjmig run --outputs` reads them (atomically: a half-written file is worse)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(values, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def stack_outputs_file(stack: str, project_dir: Path = PROJECT_ROOT, directory: Path = OUTPUTS_DIR) -> Path:
    """For `fjmig run --stack S`: the stack's outputs, read from its state and written where
    `--outputs` reads them; returns that file."""
    return write_outputs(outputs(stack, project_dir), outputs_path(stack, directory))

