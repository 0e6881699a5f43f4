"""`headstart benchmark`: the bodies-by-datasets table, each option's effect, and a cell's figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.harness import headstart


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, shapes_folder: Path) -> Path:
    home = tmp_path_factory.mktemp("benchmark") / "home"
    headstart("datasets", "add", shapes_folder, "--name", "shapes", "--json", home=home)
    headstart("datasets", "add", shapes_folder, "--name", "shapes-again", "--json", home=home)
    for name, seed in (("first", "1"), ("second", "2")):
        headstart(
            *("models", "create", "--name", name, "--architecture", "small_cnn", "--weights", "none"),
            *("--filters", "2", "--seed", seed, "--json"),
            home=home,
        )
    return home


def test_no_wait_shows_pending_cells_and_wait_scores_them(home: Path) -> None:
    pending = headstart("benchmark", "shapes", "--no-wait", "--json", home=home).json
    assert pending["datasets"] == ["shapes"] and pending["pending"] == 2
    assert {cell["state"] for row in pending["rows"] for cell in row["cells"]} == {"pending"}
    text = headstart("benchmark", "shapes", "--no-wait", home=home).stdout
    assert "2 cells pending" in text and "SHAPES" in text

    done = headstart("benchmark", "--wait", "--json", home=home).json
    assert done["datasets"] == ["shapes", "shapes-again"] and done["pending"] == 0
    assert {row["name"] for row in done["rows"]} == {"first", "second"}
    for row in done["rows"]:
        assert [cell["state"] for cell in row["cells"]] == ["scored", "scored"]
        # The same images under two names: one body's probe scores them alike.
        assert row["cells"][0]["accuracy"] == row["cells"][1]["accuracy"]
        ranks = [cell["rank"] for cell in row["cells"]]
        assert row["mean_rank"] == pytest.approx(sum(ranks) / 2)
    means = [row["mean_rank"] for row in done["rows"]]
    assert means == sorted(means)

    # Only the datasets given are columns, and the text table names each body by its sha's start.
    text = headstart("benchmark", "shapes-again", home=home).stdout
    header, *lines = text.splitlines()
    assert header.split() == ["RANK", "BODY", "NAME", "MODELS", "MEAN_RANK", "SHAPES-AGAIN"]
    assert [line.split()[1] for line in lines] == [row["body"][:12] for row in done["rows"]]


def test_body_shows_one_cells_per_class_figures(home: Path) -> None:
    done = headstart("benchmark", "shapes", "--json", home=home).json
    body = done["rows"][0]["body"]
    shown = headstart("benchmark", "shapes", "--body", body[:7], "--json", home=home).json
    assert shown["body"] == body and shown["cell"]["state"] == "scored"
    assert [c["label"] for c in shown["per_class"]] == shown["labels"] == ["circle", "square", "triangle"]
    text = headstart("benchmark", "shapes", "--body", body[:7], home=home).stdout
    assert "PRECISION" in text and "confusion (rows: true, columns: predicted)" in text
    assert f"accuracy  {done['rows'][0]['cells'][0]['accuracy']:.4f}" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--body", "abcdef"), "give exactly one DATASET"),
        (("shapes", "--body", "ab"), "at least 6"),
        (("shapes", "--body", "ffffffffffff"), "body ffffffffffff not found"),
        (("no-such-data",), "dataset no-such-data not found"),
    ],
)
def test_bad_names_are_one_line(home: Path, args: tuple, message: str) -> None:
    failed = headstart("benchmark", *args, home=home, code=None)
    assert failed.code != 0 and message in failed.error
