"""The `vahini` command explains itself: every subcommand has a description, and a
command run where no registry was published says what to do instead of acting on
an empty registry."""

from pathlib import Path

import pytest

from vahini.cli import _parser, main


def _subparsers(parser, path=()):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _subparsers(sub, (*path, name))


def test_every_subcommand_has_a_description_and_every_option_a_help():
    found = dict(_subparsers(_parser()))
    assert {"apply", "produce", "demo", "ingest", "replay", "dead-letters", "serve", "get"} <= {p[0] for p in found}
    for path, sub in found.items():
        assert sub.description, f"vahini {' '.join(path)} --help has no description"
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"vahini {' '.join(path)} {action.option_strings[0]} has no help"


def test_produce_help_shows_the_default_kind(capsys):
    with pytest.raises(SystemExit):
        main(["produce", "--help"])
    assert "(default:feature-update)" in "".join(capsys.readouterr().out.split())  # however argparse wraps it


@pytest.mark.parametrize("argv", [
    ["get", "--entity", "user", "--keys", "u1", "--groups", "user_profile"],
    ["produce", "EVENTS"],
    ["ingest", "features", "--stop-at-end"],
    ["replay", "--topic", "t", "--from", "earliest"],
    ["serve", "--port", "0"],
])
def test_a_command_without_a_published_registry_says_to_apply_one(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    for name in ("EVENT_LOG", "FEATURE_STORE", "HOT_TIER", "CONFIG_STORE"):
        monkeypatch.delenv(f"VAHINI_{name}", raising=False)
    (tmp_path / "EVENTS").write_text("{}\n")
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"vahini {argv[0]}: no registry in file://.vahini/config: run 'vahini apply DIR' first"


GET = ["get", "--entity", "user", "--keys", "u1", "--groups", "g"]


@pytest.mark.parametrize("argv", [["--settings", "x.toml", "--log-level", "DEBUG", *GET],
                                  [*GET, "--settings", "x.toml", "--log-level", "DEBUG"],
                                  ["--log-level", "DEBUG", *GET, "--settings", "x.toml"],
                                  ["ingest", "features", "--settings", "x.toml", "--log-level", "DEBUG"]])
def test_global_options_are_taken_before_or_after_the_command(argv):
    from vahini.cli import parse_args

    args = parse_args(argv)
    assert (args.settings, args.log_level, args.json_logs) == ("x.toml", "DEBUG", None)


def test_global_options_not_given_are_none():
    from vahini.cli import parse_args

    args = parse_args(GET)
    assert (args.settings, args.log_level, args.json_logs) == (None, None, None)


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"vahini {version('vahini')}"


def test_exit_codes_tell_usage_user_errors_and_unavailable_services_apart(tmp_path, monkeypatch, capsys):
    from tests.services import free_port

    monkeypatch.chdir(tmp_path)
    for name in ("EVENT_LOG", "FEATURE_STORE", "HOT_TIER", "CONFIG_STORE"):
        monkeypatch.delenv(f"VAHINI_{name}", raising=False)
    with pytest.raises(SystemExit) as usage:
        main(["get", "--entity", "user"])  # --keys and --groups missing
    assert usage.value.code == 2 and "the following arguments are required: --keys, --groups" in \
        capsys.readouterr().err
    assert main(["apply", str(tmp_path / "nowhere")]) == 1  # a user error: no such directory
    assert capsys.readouterr().err.strip() == f"vahini apply: {tmp_path / 'nowhere'} is not a directory"
    assert main(["apply", str(Path(__file__).parents[1] / "vahini" / "samples" / "registry")]) == 0
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["query", "home_ranker", "--set", "user_id=u1", "--target", nobody, "--timeout", "2"]) == 3
    assert f"vahini query: {nobody}: UNAVAILABLE" in capsys.readouterr().err
