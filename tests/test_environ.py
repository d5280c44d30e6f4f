"""expand.environ: settings from the environment, each a checked number."""

import subprocess
import sys

import pytest

from expand.cli import main
from expand.environ import count_memory_limit, heartbeat_s


@pytest.mark.parametrize("name, value, needle", [
    ("X3D_EXPAND_HEARTBEAT_S", "abc", "X3D_EXPAND_HEARTBEAT_S='abc': must be a number > 0 and at most 86400"),
    ("X3D_EXPAND_HEARTBEAT_S", "-1", "X3D_EXPAND_HEARTBEAT_S='-1': must be a number > 0"),
    ("X3D_EXPAND_COUNT_MEMORY_GB", "nan", "X3D_EXPAND_COUNT_MEMORY_GB='nan': must be a number > 0 and at most 1e+06"),
])
def test_a_bad_setting_is_exit_2_naming_it_for_every_command(monkeypatch, capsys, name, value, needle):
    """X3D_EXPAND_HEARTBEAT_S=abc made every command, presets included, end in a traceback at
    import; X3D_EXPAND_COUNT_MEMORY_GB=0.5 (a fraction) was 'internal error: ValueError'."""
    monkeypatch.setenv(name, value)
    assert main(["presets"]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_settings_are_read_when_used_and_take_fractions(monkeypatch):
    monkeypatch.delenv("X3D_EXPAND_HEARTBEAT_S", raising=False)
    monkeypatch.setenv("X3D_EXPAND_COUNT_MEMORY_GB", "")
    assert heartbeat_s() == 15.0 and count_memory_limit() == 6 * 2**30  # unset or empty: the default
    monkeypatch.setenv("X3D_EXPAND_COUNT_MEMORY_GB", "0.5")
    monkeypatch.setenv("X3D_EXPAND_HEARTBEAT_S", "2.5")
    assert count_memory_limit() == 2**29 and heartbeat_s() == 2.5


def test_importing_the_cli_with_a_bad_setting_does_not_fail():
    """The value used to be parsed at import: `import expand.cli` itself raised."""
    proc = subprocess.run([sys.executable, "-c", "import expand.cli, expand.complexity, expand.search.progress"],
                          capture_output=True, text=True, env={"X3D_EXPAND_HEARTBEAT_S": "abc", "PATH": ""})
    assert proc.returncode == 0, proc.stderr
