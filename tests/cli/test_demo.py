"""`headstart demo`: its sizes as asked, its two trainings, and its leaderboards; a second run reuses them."""

from __future__ import annotations

from pathlib import Path

from tests.cli.harness import headstart


def test_demo_runs_to_its_leaderboards_at_the_sizes_asked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    demo = headstart(
        *("demo", "--shapes-per-class", "12", "--epochs", "2", "--digits-limit", "150", "--json"),
        home=home,
    ).json
    shapes, digits = demo["datasets"]
    assert sum(shapes["counts"].values()) == 3 * 12 and sum(digits["counts"].values()) == 150
    assert len(list((home / "demo-data" / "shapes" / "circle").glob("*.png"))) == 12
    on_shapes, on_digits = demo["trainings"]
    assert len(on_shapes["epochs"]) == 2 and len(on_digits["epochs"]) == 2 * 2  # twice as many on digits
    assert (on_shapes["status"], on_digits["status"]) == ("updated", "kept_both")
    assert [row["model_name"] for row in demo["leaderboards"]["digits"]] == [
        "shapes-cnn on digits",
        "shapes-cnn",
    ]
    first = demo["leaderboards"]["shapes"][0]
    assert (first["model_name"], first["rank"], first["count"]) == ("shapes-cnn", 1, shapes["counts"]["test"])

    again = headstart("demo", "--shapes-per-class", "12", "--epochs", "2", "--digits-limit", "150", home=home)
    assert "exists already; skipping the trainings" in again.stdout
    assert "leaderboard: shapes" in again.stdout and "leaderboard: digits" in again.stdout
    assert len(headstart("trainings", "--json", home=home).json) == 2
