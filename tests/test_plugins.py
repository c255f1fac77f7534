"""Plugin discovery through real entry points of really installed distributions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import pip_install_into, write_plugin_distribution

from nrstream import cli
from nrstream.errors import PluginError
from nrstream.plugin.registry import PluginLoadWarning, get_registry, reload_plugins

BUILTINS = {"toy", "fashion_mnist", "speech_commands", "synth_speech", "recurrent", "ssm", "snn", "losses", "metrics"}

# name -> module source; each becomes its own distribution `nrstream-test-<name>`
DISTRIBUTIONS = {
    "extra_metric": """
        from nrstream import hookimpl

        class Count:
            def __init__(self):
                self.n = 0
            def update(self, chunk, logits, aux=None):
                self.n += int(chunk.end.sum())
            def compute(self):
                return {"decisions": self.n}
            def reset(self):
                self.n = 0

        @hookimpl
        def nrstream_register_metrics(register):
            register("decision_count", Count)
    """,
    "duplicate_gru": """
        from nrstream import hookimpl

        @hookimpl
        def nrstream_register_architectures(register):
            register("gru", lambda **kw: None)
    """,
    "broken_import": """
        import a_module_that_does_not_exist
    """,
    "exit_on_import": """
        import sys

        sys.exit(0)
    """,
    "typo_hook": """
        from nrstream import hookimpl

        @hookimpl
        def nrstream_register_architecture(register):  # missing the final "s"
            register("never", object)
    """,
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Install the test distributions with pip into their own folder, put it on sys.path."""
    root = tmp_path_factory.mktemp("plugins")
    folders = [write_plugin_distribution(root / "src", name, source) for name, source in DISTRIBUTIONS.items()]
    target = pip_install_into(root / "site", *folders)
    sys.path.insert(0, str(target))
    yield target
    sys.path.remove(str(target))
    for name in DISTRIBUTIONS:
        sys.modules.pop(name, None)
    reload_plugins()


@pytest.fixture
def load(site, monkeypatch):
    """Load exactly the named plugins (built-ins and test distributions)."""

    def _load(*names: str, strict: bool = False):
        monkeypatch.setenv("NRSTREAM_LOAD_PLUGINS", ",".join(names))
        monkeypatch.setenv("NRSTREAM_STRICT_PLUGINS", "1" if strict else "0")
        reload_plugins()
        return get_registry()

    yield _load
    monkeypatch.delenv("NRSTREAM_LOAD_PLUGINS")
    reload_plugins()


def test_builtins_are_plugins_found_through_entry_points():
    reload_plugins()
    registry = get_registry()
    assert {"rnn", "gru", "lstm", "ssm", "snn"} <= set(registry.names("architecture"))
    assert registry.get("architecture", "gru").plugin == "recurrent"
    assert registry.get("data_source", "toy").plugin == "toy"


def test_out_of_tree_plugin_is_discovered(load):
    registry = load("extra_metric", "toy")
    assert registry.names("metric") == ["decision_count"]
    assert registry.get("metric", "decision_count").plugin == "extra_metric"


def test_plugins_command_lists_distribution_and_registrations(load, capsys):
    load("extra_metric", "toy")
    assert cli.main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["extra_metric"]["distribution"] == "nrstream-test-extra-metric"
    assert listed["extra_metric"]["version"] == "1.2.3"
    assert listed["extra_metric"]["registers"] == {"metric": ["decision_count"]}
    assert listed["toy"]["registers"] == {"data_source": ["toy"]}


def test_duplicate_name_names_both_plugins(load):
    with pytest.raises(PluginError, match="architecture 'gru' is registered by both plugin") as raised:
        load("recurrent", "duplicate_gru")
    assert "'recurrent'" in str(raised.value) and "'duplicate_gru'" in str(raised.value)


def test_broken_plugin_warns_and_the_rest_works(load):
    with pytest.warns(PluginLoadWarning, match="'broken_import' .*failed to import: ModuleNotFoundError"):
        registry = load("broken_import", "toy")
    assert registry.names("data_source") == ["toy"]


def test_strict_mode_turns_a_broken_plugin_into_an_error(load):
    with pytest.raises(PluginError, match="'broken_import'"):
        load("broken_import", "toy", strict=True)


def test_typo_in_a_hook_name_is_caught(load):
    with pytest.warns(PluginLoadWarning, match="'typo_hook' .*invalid.*nrstream_register_architecture"):
        registry = load("typo_hook", "toy")
    assert "never" not in registry.names("architecture")


def test_disable_plugins_by_name(site, monkeypatch):
    monkeypatch.setenv(
        "NRSTREAM_DISABLE_PLUGINS", "broken_import,exit_on_import,typo_hook,duplicate_gru,extra_metric,ssm"
    )
    reload_plugins()
    registry = get_registry()
    assert "ssm" not in registry.names("architecture") and "gru" in registry.names("architecture")
    monkeypatch.delenv("NRSTREAM_DISABLE_PLUGINS")
    reload_plugins()


def test_unknown_name_suggests_the_closest(load):
    registry = load("recurrent")
    with pytest.raises(PluginError, match=r"unknown architecture 'gur'; did you mean 'gru'\?"):
        registry.get("architecture", "gur")


def test_cli_reports_plugin_errors_in_one_line(site):
    env = {"NRSTREAM_LOAD_PLUGINS": "recurrent,duplicate_gru", "PYTHONPATH": str(site), "PATH": ""}
    result = subprocess.run([sys.executable, "-m", "nrstream.cli", "plugins"], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("nrstream: error: architecture 'gru'")
    assert "Traceback" not in result.stderr


def test_options_a_factory_rejects_become_one_line_errors_naming_the_plugin(load):
    from nrstream.errors import ConfigError

    registry = load("toy")
    with pytest.raises(ConfigError, match=r"^data_source 'toy': toy needs num_classes >= 2, got 1$"):
        registry.create("data_source", "toy", num_classes=1)
    with pytest.raises(ConfigError, match=r"^data_source 'toy': .*unexpected keyword argument 'colour'"):
        registry.create("data_source", "toy", colour="red")


def test_a_plugin_calling_sys_exit_on_import_is_a_load_failure_naming_it(load):
    with pytest.warns(
        PluginLoadWarning,
        match=r"'exit_on_import' \(nrstream-test-exit-on-import 1.2.3\) failed to import: SystemExit: 0",
    ):
        registry = load("exit_on_import", "toy")
    assert registry.names("data_source") == ["toy"]
    with pytest.raises(PluginError, match="'exit_on_import'.*SystemExit"):
        load("exit_on_import", "toy", strict=True)


def test_cli_does_not_end_silently_when_a_plugin_exits_on_import(site):
    env = {"NRSTREAM_LOAD_PLUGINS": "toy,exit_on_import", "PYTHONPATH": str(site), "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-m", "nrstream.cli", "--strict", "plugins"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "'exit_on_import'" in result.stderr and "SystemExit" in result.stderr


def test_one_did_you_mean_rule():
    from nrstream.plugin.registry import close_matches, did_you_mean

    assert close_matches("epocs", ["epochs", "steps", "lanes"]) == ["epochs"]
    # within 0.1 of the best ratio only: 'gru' beats 'rnn' clearly, so only 'gru' is offered
    assert close_matches("gur", ["gru", "rnn", "lstm"]) == ["gru"]
    assert close_matches("zzz", ["gru", "rnn"]) == []
    assert did_you_mean("zzz", ["a", "b"], "option") == "valid options: a, b"
    assert did_you_mean("lsmt", ["lstm"]) == "did you mean 'lstm'?"


def test_quote_cuts_long_values():
    from nrstream.plugin.registry import quote

    assert quote("x" * 1000) == "'" + "x" * 76 + "..."
    assert len(quote(list(range(10**6)))) <= 80
    assert quote(10**1000).startswith("<an integer of about 1000 digits")
    assert quote(3) == "3" and quote("ab") == "'ab'"


def test_check_options_names_the_option_and_checks_annotated_types(load):
    from nrstream.errors import OptionError, PluginOptionError

    assert PluginOptionError is OptionError
    registry = load("toy", "recurrent")
    registry.check_options("data_source", "toy", {"num_classes": 3, "jitter": 1})  # an int is a fine float
    with pytest.raises(OptionError) as info:
        registry.check_options("data_source", "toy", {"num_clases": 3})
    assert (str(info.value), info.value.option) == (
        "unknown option of data source 'toy'; did you mean 'num_classes'?",
        "num_clases",
    )
    with pytest.raises(OptionError, match=r"^option of data source 'toy': must be a finite number, got nan$"):
        registry.check_options("data_source", "toy", {"jitter": float("nan")})
    with pytest.raises(OptionError, match=r"^option of data source 'toy': expected an integer, got 2.5 \(float\)$"):
        registry.check_options("data_source", "toy", {"seed": 2.5})
    with pytest.raises(OptionError, match="unknown option of architecture 'gru'"):
        registry.check_options("architecture", "gru", {"input_size": 3}, skip=("input_size", "num_classes"))
    assert "input_size" not in registry.option_names("architecture", "gru", skip=("input_size", "num_classes"))


def test_create_turns_a_runtime_error_from_bad_options_into_one_line(load):
    from nrstream.errors import OptionError

    registry = load("toy")
    with pytest.raises(
        OptionError, match=r"^data_source 'toy': cannot be built with these options: .*negative"
    ) as info:
        registry.create("data_source", "toy", feature_size=-3)
    assert "\n" not in str(info.value)
