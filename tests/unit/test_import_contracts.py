"""Import contracts: the direction of imports that docs/ARCHITECTURE.md draws, enforced.

- flows import no ``mysqlops.adapters`` (they call core entry points; ``flows/demo.py`` is the
  demo's driver script, not a flow: it starts sandbox servers and an S3 endpoint itself);
- the pure floor (``sql``, ``streams``, ``tools``, ``layout``, ``manifest``, ``jsondoc``, ``model``,
  ``progress``, ``units``, ``redact``, ``gtid``, ``errors``) imports nothing of mysqlops but the floor: no adapters, no
  capability, directly or through another module;
- inside the floor, imports go one way, down :data:`FLOOR_RANK` (``tools`` may use ``sql``, never
  the reverse; ``redact``, text hygiene, is below both): no two floor packages import each other;
- the adapters import no capability package (they are below them);
- no module but the one process runner imports ``subprocess``.

Every import counts, also one inside a function. Run by name: ``pytest -k test_import_contracts``.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORE = ROOT / "mysqlops"
#: the floor's own order, bottom first: a floor module imports only floor modules of a lower rank
#: (and its own package)
FLOOR_RANK = {
    "errors": 0,
    "units": 0,
    "redact": 0,
    "jsondoc": 1,
    "gtid": 1,
    "progress": 1,
    "model": 2,
    "layout": 3,
    "streams": 3,
    "manifest": 4,
    "sql": 4,
    "tools": 5,
}
FLOOR = tuple(FLOOR_RANK)
CAPABILITIES = (
    "backup",
    "restore",
    "binlog",
    "replication",
    "retention",
    "report",
    "catalog",
    "checks",
    "runs",
    "metrics",
)
FLOW_EXCEPTIONS = {"demo.py": "the demo's driver script: starts sandbox servers and a moto S3 endpoint"}


def _imports(path: pathlib.Path) -> list[str]:
    """Every module ``path`` imports (absolute names; ``from x import y`` counts ``x.y`` too)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def _mysqlops_part(name: str) -> str | None:
    """``mysqlops.streams.crypto`` -> ``streams``; None for anything outside mysqlops."""
    parts = name.split(".")
    return parts[1] if parts[0] == "mysqlops" and len(parts) > 1 else None


def _module_part(path: pathlib.Path, root: pathlib.Path = CORE) -> str:
    rel = path.relative_to(root).parts
    return rel[0].removesuffix(".py")


def _flows_importing_adapters() -> list[str]:
    return [
        f"flows/{path.name}: {name}"
        for path in sorted((ROOT / "flows").glob("*.py"))
        if path.name not in FLOW_EXCEPTIONS
        for name in _imports(path)
        if name.startswith("mysqlops.adapters")
    ]


def _floor_importing_above() -> list[str]:
    return [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted(CORE.rglob("*.py"))
        if _module_part(path) in FLOOR
        for name in _imports(path)
        if (part := _mysqlops_part(name)) is not None and part not in FLOOR
    ]


def _floor_importing_sideways_or_up(root: pathlib.Path = CORE) -> list[str]:
    return [
        f"{path.relative_to(root)}: {name}"
        for path in sorted(root.rglob("*.py"))
        if (part := _module_part(path, root)) in FLOOR_RANK
        for name in _imports(path)
        if (other := _mysqlops_part(name)) in FLOOR_RANK
        and other != part
        and FLOOR_RANK[other] >= FLOOR_RANK[part]
    ]


def _adapters_importing_capabilities() -> list[str]:
    return [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((CORE / "adapters").rglob("*.py"))
        for name in _imports(path)
        if _mysqlops_part(name) in CAPABILITIES
    ]


def _subprocess_outside_the_runner() -> list[str]:
    runner = CORE / "adapters" / "process.py"
    return [
        str(path.relative_to(ROOT))
        for folder in ("mysqlops", "flows", "blocks", "deployments")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != runner and any(n == "subprocess" or n.startswith("subprocess.") for n in _imports(path))
    ]


CONTRACTS = {
    "flows-import-no-adapters": _flows_importing_adapters,
    "floor-imports-only-floor": _floor_importing_above,
    "floor-imports-one-way": _floor_importing_sideways_or_up,
    "adapters-import-no-capability": _adapters_importing_capabilities,
    "only-the-runner-imports-subprocess": _subprocess_outside_the_runner,
}


@pytest.mark.parametrize("contract", sorted(CONTRACTS))
def test_import_contracts(contract: str) -> None:
    assert CONTRACTS[contract]() == []


def test_import_contracts_see_a_breach(tmp_path: pathlib.Path) -> None:
    """The scanner finds imports wherever they are: inside a function, as ``from x import y``."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n    from mysqlops.adapters import storage\n    import subprocess\n"
        "from mysqlops import adapters\n"
    )
    found = _imports(sample)
    assert "mysqlops.adapters" in found and "subprocess" in found and "mysqlops.adapters.storage" in found
    assert _mysqlops_part("mysqlops.adapters.storage") == "adapters"


def test_import_contracts_see_floor_packages_importing_each_other(tmp_path: pathlib.Path) -> None:
    """sql importing tools (tools uses sql) is a breach; tools using sql or gtid, or sql using redact, is not."""
    for rel, text in {
        "sql/replica.py": "from mysqlops.tools.client import dump_argv\nfrom mysqlops import redact\n",
        "tools/binlog.py": "from mysqlops.sql.dialect import dialect_for\nfrom mysqlops.gtid import parse_mariadb_gtids\n",
        "redact.py": "import re\n",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert _floor_importing_sideways_or_up(tmp_path) == [
        "sql/replica.py: mysqlops.tools.client",
        "sql/replica.py: mysqlops.tools.client.dump_argv",
    ]


SECRET_TYPES = ("Keyring", "RunContext", "bytes", "SecretStr")


def _task_parameters_holding_keys() -> list[str]:
    """``@task`` functions of the flows with a parameter that could carry key bytes."""
    found = []
    for path in sorted((ROOT / "flows").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.FunctionDef):
                continue
            decorators = [ast.unparse(d) for d in node.decorator_list]
            if not any(d == "task" or d.startswith(("task(", "prefect.task")) for d in decorators):
                continue
            for arg in node.args.args + node.args.kwonlyargs:
                annotation = ast.unparse(arg.annotation) if arg.annotation else ""
                if any(t in annotation for t in SECRET_TYPES):
                    found.append(f"flows/{path.name}: {node.name}({arg.arg}: {annotation})")
    return found


def test_keys_never_travel_as_task_parameters() -> None:
    """Task parameters are recorded by Prefect: tasks take key block names and load the keys."""
    assert _task_parameters_holding_keys() == []


def test_run_context_never_shows_its_keys() -> None:
    from mysqlops.runs import RunContext
    from mysqlops.streams.crypto import Keyring, format_key, generate_key

    key = generate_key()
    ctx = RunContext(staging_dir="/tmp", keyring=Keyring(key))
    assert ctx.encryption_key == key
    text = repr(ctx) + str(ctx)
    assert format_key(key) not in text and key.hex() not in text and "Keyring" not in text
