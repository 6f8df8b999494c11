"""The lean core install: report, Parquet and demo libraries are extras, and a missing one is named.

The CLI runs in a subprocess in which the extra's modules are made unimportable the way Python
documents (`sys.modules[name] = None`), so nothing of Spendgate's own is mocked; the container test
(`tests/test_container.py`) checks the same message in a real core-only install.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from spendgate.extras import EXTRAS, MissingExtra, missing, require

ROOT = Path(__file__).resolve().parent.parent
HEAVY = {
    "reports": {"matplotlib", "jinja2", "reportlab", "rl_accel"},
    "parquet": {"pyarrow"},
    "demo": {"anthropic", "openai"},
    "bedrock": {"botocore"},
    "vertex": {"google-auth"},
    "console": {"jinja2", "authlib", "python-multipart"},
}
DISTRIBUTION = {"google.auth": "google-auth"}  # import name -> distribution name, where they differ


def _project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        project: dict[str, object] = tomllib.load(handle)["project"]
    return project


def _names(requirements: object) -> set[str]:
    assert isinstance(requirements, list)
    return {re.split(r"[\s<>=!;\[~]", str(r), maxsplit=1)[0].lower() for r in requirements}


def test_core_install_holds_no_report_parquet_or_demo_library() -> None:
    core = _names(_project()["dependencies"])
    for extra, libraries in HEAVY.items():
        assert not core & libraries, f"{sorted(core & libraries)} belong in the [{extra}] extra"


def test_each_extra_installs_its_libraries_and_all_holds_every_extra() -> None:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    for extra, libraries in HEAVY.items():
        assert _names(extras[extra]) == libraries
        # what require() checks is what the extra installs (import names of those distributions)
        assert {DISTRIBUTION.get(m, m) for m in EXTRAS[extra]} <= libraries
    assert extras["all"] == ["spendgate[reports,parquet,demo,bedrock,vertex,console]"]


def test_the_makefile_installs_every_extra_for_the_demo_and_the_tests() -> None:
    assert "-e '.[all,dev]'" in (ROOT / "Makefile").read_text()


def test_readme_names_each_extra() -> None:
    readme = (ROOT / "README.md").read_text()
    for extra in (*HEAVY, "all"):
        assert f"spendgate[{extra}]" in readme


def test_require_names_the_extra_and_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    assert missing("parquet") is None  # installed here by make test
    require("parquet", "the FOCUS Parquet export")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # how Python marks a module unimportable
    assert missing("parquet") == "pyarrow"
    with pytest.raises(MissingExtra) as caught:
        require("parquet", "the FOCUS Parquet export")
    assert str(caught.value) == (
        "the FOCUS Parquet export needs the 'parquet' extra, which is not installed "
        "(no module 'pyarrow'): pip install 'spendgate[parquet]'"
    )
    assert caught.value.extra == "parquet"


def _cli_without(
    blocked: tuple[str, ...], args: list[str], tmp_path: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None\n"
        f"sys.argv = ['spendgate', *{args!r}]\n"
        "from spendgate.cli import main\n"
        "main()\n"
    )
    environ = {**os.environ, "SPENDGATE_DATABASE_URL": f"sqlite:///{tmp_path}/sg.db", **env}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=environ, cwd=tmp_path
    )


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        (("matplotlib",), ["report", "finance", "--month", "2026-10", "--output", "out"], "reports"),
        (("reportlab",), ["report", "governance", "--month", "2026-10", "--output", "out"], "reports"),
        (
            ("pyarrow",),
            ["chargeback", "--month", "2026-10", "--format", "focus-parquet", "--output", "f.parquet"],
            "parquet",
        ),
        (("anthropic", "openai"), ["demo", "--no-wait", "--calls", "1"], "demo"),
    ],
)
def test_a_missing_extra_is_one_clear_line_naming_it(
    blocked: tuple[str, ...], args: list[str], extra: str, tmp_path: Path
) -> None:
    done = _cli_without(blocked, args, tmp_path)
    assert done.returncode == 1, done.stderr
    assert f"pip install 'spendgate[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_gateway_refuses_to_start_with_a_report_schedule_but_no_reports_extra(tmp_path: Path) -> None:
    schedule = tmp_path / "reports.toml"
    schedule.write_text("")
    done = _cli_without(
        ("matplotlib",), ["serve", "--port", "1"], tmp_path, SPENDGATE_REPORTS_FILE=str(schedule)
    )
    assert done.returncode == 1
    assert "scheduled reports (SPENDGATE_REPORTS_FILE) needs the 'reports' extra" in done.stderr
    assert "Traceback" not in done.stderr
