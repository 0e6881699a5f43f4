"""Every option of the command tree is passed by some CLI test (issue 9: no untested option).

`harness.headstart` records the options of each run it makes; the last test of the session walks
the click tree (`headstart.cli.main`: every group, command and option, the global ones, --help and
--version) and fails for any option that no run passed. The checks of the walker below show that it
can fail.
"""

from __future__ import annotations

import click

from tests.cli.harness import EXERCISED, passed_options, untested_options, walk_options


@click.group()
@click.option("--verbose", is_flag=True)
def toy() -> None:
    """A tree to check the walker on."""


@toy.command()
@click.argument("name")
@click.option("--colour", default="red")
@click.option("--loud/--quiet", default=False)
def greet(name: str, colour: str, loud: bool) -> None:
    """Greets."""


def test_the_walker_finds_every_option_of_a_tree() -> None:
    assert set(walk_options(toy)) == {
        ((), "--verbose"),
        ((), "--help"),
        (("greet",), "--colour"),
        (("greet",), "--loud"),
        (("greet",), "--quiet"),
        (("greet",), "--help"),
    }


def test_an_option_that_no_run_passed_is_reported() -> None:
    ran = passed_options(["--verbose", "greet", "bob", "--colour", "blue", "--loud"], toy)
    assert ran == {((), "--verbose"), (("greet",), "--colour"), (("greet",), "--loud")}
    assert untested_options(toy, ran) == [((), "--help"), (("greet",), "--quiet"), (("greet",), "--help")]
    # A value that looks like a command, and --opt=value, are read as click reads them.
    assert passed_options(["greet", "--colour=greet", "--quiet", "--help"], toy) == {
        (("greet",), "--colour"),
        (("greet",), "--quiet"),
        (("greet",), "--help"),
    }
    assert untested_options(toy, set(walk_options(toy))) == []


def test_global_options_count_once_wherever_they_are_given() -> None:
    from headstart.cli import main

    before = passed_options(["--json", "--home", "h", "datasets", "list"], main)
    after = passed_options(["datasets", "list", "--home", "h", "--json"], main)
    middle = passed_options(["datasets", "--json", "list", "--home", "h"], main)
    assert before == after == middle == {((), "--json"), ((), "--home")}
    assert passed_options(["models", "list", "--public"], main) == {(("models", "list"), "--public")}
    assert passed_options(["models", "list", "--private"], main) == {(("models", "list"), "--private")}
    every = set(walk_options(main))
    assert {
        ((), "--version"),
        ((), "--url"),
        (("models", "create"), "--seed"),
        (("demo",), "--help"),
    } <= every
    assert untested_options(main, every - {(("models", "create"), "--seed")}) == [
        (("models", "create"), "--seed")
    ]


def test_every_option_is_exercised() -> None:
    """Runs last (tests/cli/conftest.py): run the whole of tests/cli for it to pass."""
    from headstart.cli import main

    missing = untested_options(main, EXERCISED)
    assert not missing, "options that no CLI test passes: " + ", ".join(
        f"headstart {' '.join(path)} {option}".replace("  ", " ") for path, option in missing
    )
