"""The package's shape: public API, registries, documentation, demo."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from support import REPO

import childsafe
import childsafe.signals
from childsafe.errors import UsageError
from childsafe.signals import SignalType, get_signal, parse_signal_value, register, signal_names


def test_public_api_is_exactly_what_all_names() -> None:
    for name in childsafe.__all__:
        assert hasattr(childsafe, name), name
    public = {
        n for n in vars(childsafe) if not n.startswith("_") and not isinstance(getattr(childsafe, n), type(childsafe))
    }
    assert public <= set(childsafe.__all__) | {"annotations", "version", "PackageNotFoundError"}


def test_every_signal_module_is_registered() -> None:
    modules = {
        m.name
        for m in pkgutil.iter_modules(childsafe.signals.__path__)
        # helpers and variants
        if m.name not in ("registry", "hashing", "derived", "keypoints", "full_resolution")
    }
    assert modules <= set(signal_names()), "a signal module is not imported in childsafe/signals/__init__.py"
    assert signal_names() == ["md5", "sha1", "sha256", "pdq", "vpdq"]


def test_duplicate_signal_names_are_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(SignalType(name="md5", kind="digest", hex_length=32, distance=lambda a, b: 0))


def test_signal_values_are_checked_and_normalised() -> None:
    assert parse_signal_value("MD5:" + "AB" * 16) == ("md5", "ab" * 16)
    assert get_signal("pdq").distance("f" * 64, "0" * 64) == 256
    with pytest.raises(UsageError, match="64 hexadecimal"):
        parse_signal_value("pdq:abc")
    with pytest.raises(UsageError, match="unknown signal 'xyz'"):
        parse_signal_value("xyz:00")
    with pytest.raises(UsageError, match="SIGNAL:VALUE"):
        parse_signal_value("nocolon")


def test_every_module_imports() -> None:
    for module in pkgutil.walk_packages(childsafe.__path__, "childsafe."):
        if ".migrations" not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)


def _cli_commands() -> list[str]:
    from typer.main import get_command

    from childsafe.cli import app

    group = get_command(app)
    names: list[str] = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None)
        names += [f"{name} {sub}" for sub in subcommands] if subcommands else [name]
    return names


def test_every_command_and_setting_is_documented() -> None:
    docs = (REPO / "docs" / "cli.md").read_text()
    for command in _cli_commands():
        assert f"childsafe {command}" in docs, f"`childsafe {command}` is not in docs/cli.md"
    for setting in re.findall(
        r"CHILDSAFE_[A-Z_]+",
        (REPO / "childsafe" / "config.py").read_text()
        + (REPO / "childsafe" / "media" / "limits.py").read_text()
        + (REPO / "childsafe" / "media" / "budgets.py").read_text(),
    ):
        assert setting in docs, f"{setting} is not in docs/cli.md"


def test_the_projects_copy_of_the_contract_is_current() -> None:
    shared = REPO.parent / "shared" / "SPEC.md"
    if not shared.is_file():
        pytest.skip(f"the steering repository's contract is not at {shared}")
    copy = (REPO / "docs" / "spec.md").read_text()
    contract = copy.split("\n## Deviations and additions in childsafe", 1)[0]
    assert contract.split("\n", 3)[3].rstrip() == shared.read_text().rstrip(), (
        "docs/spec.md differs from ../shared/SPEC.md"
    )


def test_one_rule_for_names_with_the_extra_characters_asked_for() -> None:
    from childsafe.naming import checked_name

    assert checked_name("CAID-2026.v1_uk", "bank") == "CAID-2026.v1_uk"
    assert checked_name("analyst@force", "key", also="@") == "analyst@force"
    for bad, also in [("-leading", ""), ("trailing\n", ""), ("a@b", ""), ("x" * 101, ""), ("", "@"), ("a b", "@")]:
        with pytest.raises(UsageError, match="bad bank name .* starting with a letter or digit"):
            checked_name(bad, "bank", also=also)


def _imported_modules(source: str, module: str) -> set[str]:
    """Every module that ``source`` (the module named ``module``) imports, as
    absolute names; for ``from X import Y`` both ``X`` and ``X.Y`` (``Y`` may be a module)."""
    imported: set[str] = set()
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up for each dot past the first
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            imported.add(base)
            imported |= {f"{base}.{alias.name}" for alias in node.names}
    return imported


def _reads_environment(source: str) -> bool:
    """Whether ``source`` reads the process environment (``os.environ``,
    ``os.environb``, ``os.getenv``, or those names imported from ``os``)."""
    environment = {"environ", "environb", "getenv", "getenvb"}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in environment:
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                return True
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(alias.name in environment for alias in node.names):
                return True
    return False


def _forbidden_route_imports(source: str, module: str) -> set[str]:
    """The modules that route module ``module`` may not import, that ``source`` imports."""
    return {
        name
        for name in _imported_modules(source, module)
        if name == "childsafe.service.app" or (name.startswith("childsafe.service.routes.") and name != module)
    }


def test_the_import_checks_see_what_they_look_for() -> None:
    route = "childsafe.service.routes.banks"
    assert _forbidden_route_imports("from childsafe.service.app import context_of", route) == {"childsafe.service.app"}
    assert _forbidden_route_imports("from childsafe.service import app", route) == {"childsafe.service.app"}
    assert _forbidden_route_imports("from .matching import upload_of", route) == {
        "childsafe.service.routes.matching",
        "childsafe.service.routes.matching.upload_of",
    }
    assert _forbidden_route_imports("from ..app import create_app", route) == {"childsafe.service.app"}
    assert _forbidden_route_imports("from childsafe.service.dependencies import context_of", route) == set()
    assert _reads_environment("import os\nos.environ.get('X')")
    assert _reads_environment("from os import getenv")
    assert not _reads_environment("def f(environ: dict) -> None:\n    environ.get('PATH_INFO')")


def test_routes_import_dependencies_never_the_app_or_each_other() -> None:
    routes = Path(childsafe.__file__).parent / "service" / "routes"
    modules = sorted(routes.glob("*.py"))
    assert {path.stem for path in modules} >= {"banks", "deter", "health", "matching"}
    for path in modules:
        module = f"childsafe.service.routes.{path.stem}"
        assert not _forbidden_route_imports(path.read_text(encoding="utf-8"), module), path


def test_only_config_reads_the_environment() -> None:
    package = Path(childsafe.__file__).parent
    readers = {
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if _reads_environment(path.read_text(encoding="utf-8"))
    }
    assert readers == {"config.py"}


def test_an_error_names_its_input_as_each_front_door_does(capsys: pytest.CaptureFixture[str]) -> None:
    import pickle

    import typer

    from childsafe.cli._common import errors_to_exit_codes

    error = UsageError("{field} must be between 1 and 3650", field="preserve_days")
    assert str(error) == "preserve_days must be between 1 and 3650"  # what the HTTP API says
    assert error.worded("--preserve-days") == "--preserve-days must be between 1 and 3650"
    copied = pickle.loads(pickle.dumps(error))  # from a worker process
    assert type(copied) is UsageError and str(copied) == str(error) and copied.field == "preserve_days"
    assert str(UsageError("no {field} here")) == "no {field} here"  # only a message with a field is worded
    with pytest.raises(typer.Exit) as stopped, errors_to_exit_codes():
        raise error
    assert stopped.value.exit_code == 2  # and the command line names its option
    assert capsys.readouterr().err == "childsafe: error: --preserve-days must be between 1 and 3650\n"


def _flags_in_raised_messages(source: str) -> list[str]:
    """CLI options (``--name``) written in the messages of errors that ``source`` raises."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            for text in ast.walk(node.exc):
                if isinstance(text, ast.Constant) and isinstance(text.value, str):
                    found += re.findall(r"--[a-z][a-z-]+", text.value)
    return found


def test_library_messages_name_inputs_not_command_line_options() -> None:
    assert _flags_in_raised_messages('raise UsageError(f"give --signal {x}")') == ["--signal"]
    assert _flags_in_raised_messages('raise UsageError("{field} is bad", field="signal")') == []
    package = Path(childsafe.__file__).parent
    offenders = {
        path.relative_to(package).as_posix(): flags
        for path in package.rglob("*.py")
        if "cli" not in path.relative_to(package).parts
        and (flags := _flags_in_raised_messages(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}
