"""Every widget in JupyterLab, in the light and the dark theme, at 1440 and 1024 pixels wide.

Dana, a new hub user, opens a notebook with one widget per cell and runs it. Then, for each theme
and width, each widget's output is photographed into build/screenshots/look/ and checked the way a
person would look at it: nothing sticks out of the notebook or is cut short (DOM bounding boxes and
scroll widths), the grids have their columns and rows, and an empty chart says what would fill it
instead of drawing axes.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from typing import Any

import pytest

from tests.browser.conftest import LAB_SETTINGS
from tests.browser.test_quickstart import CELL_MS, DEFAULT_MS, DEMO_MODEL, SPAWN_MS, catalog
from tests.e2e.conftest import REPO, Hub

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USER = "dana"
LOOK = REPO / "build" / "screenshots" / "look"
WIDTHS = (1440, 1024)
HEIGHT = 2400  # tall enough that each widget is photographed whole
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
MODEL_TITLES = ["name", "owner", "kind", "labels", "params", "size", "visibility", "best score", "updated"]

SETUP = f"""
import time
from headstart.kernels.client import HeadstartClient
from headstart.kernels.schemas import SweepGrid, TrainingConfig
from pathlib import Path
from headstart.kernels.engine.demo_data import write_shapes
from headstart.widgets import (
    AddDataset, BenchmarkBoard, DatasetPicker, Evaluate, Leaderboard, ModelCard, ModelPicker,
    NewModel, SweepBoard, TrainingDashboard, TrainingSetup,
)
client = HeadstartClient()
model = next(m for m in client.models.list() if m.name == {DEMO_MODEL!r})
dataset = next(d for d in client.datasets.list() if set(d.labels) == set(model.labels or []))
quick = TrainingConfig(epochs=3, early_stopping_patience=None)
training = client.trainings.start(model.id, dataset.name, quick, timeout=300)
sweep = client.sweeps.start(
    model.id, dataset.name, SweepGrid(learning_rate=[0.001, 0.01]), config=quick, timeout=300
)
print("ready", training.status, len(sweep.runs))
"""

# (name, code): each cell's last line is the widget it shows.
WIDGETS = [
    ("model-picker", "picker = ModelPicker()\npicker.value = model.id\npicker"),
    ("dataset-picker", "datasets = DatasetPicker()\ndatasets.value = dataset.name\ndatasets"),
    (
        "training-setup",
        "setup = TrainingSetup()\nsetup.models.value = model.id\nsetup.datasets.value = dataset.name\nsetup",
    ),
    ("training-dashboard", "TrainingDashboard(training.id)"),
    ("leaderboard-empty", "Leaderboard(dataset.name)"),
    ("leaderboard-compare", "board = Leaderboard(dataset.name)\nboard.select([model.id])\nboard"),
    (
        "evaluate",
        "evaluate = Evaluate(model_id=model.id)\nevaluate.dataset.value = dataset.id\n"
        "evaluate.run_split()\nevaluate",
    ),
    (
        "sweep-board",
        "sweep_board = SweepBoard(sweep.id)\nsweep_board.table.value = sweep.runs[0].id\nsweep_board",
    ),
    ("model-card", "ModelCard(model.id)"),
    ("benchmark", "BenchmarkBoard()"),
    (
        "add-dataset",
        "add = AddDataset()\n"
        "add.path.value = str(write_shapes(Path.home() / 'look-shapes', per_class=6, seed=1))\n"
        "add.name.value = f'dana-shapes-{time.time_ns()}'\nadd.run()\nadd",
    ),
    ("new-model", "NewModel()"),
]

# What a person checks by eye, as the DOM says it. An element "sticks out" when its box passes the
# output's right edge outside a box meant to scroll; an element "hides" part of what it holds when it
# clips or scrolls its overflow without being meant to (a cut label, a chart wider than its box); a
# text box or a drop-down is cut when its value is wider than it.
PROBLEMS = """
(root) => {
  const edge = root.getBoundingClientRect().right + 1;
  const name = (el) => {
    const text = (el.value !== undefined && el.tagName !== 'BUTTON' ? el.value : el.textContent) || '';
    return `${el.tagName.toLowerCase()}.${[...el.classList].join('.')} "${text.trim().slice(0, 50)}"`;
  };
  const canvas = document.createElement('canvas').getContext('2d');
  const textWidth = (el, text) => {
    const s = getComputedStyle(el);
    canvas.font = `${s.fontStyle} ${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
    return canvas.measureText(text).width;
  };
  // Boxes meant to scroll: a grid's rows, a large confusion matrix. Any other box that scrolls or
  // clips hides what passes its edges.
  const SCROLLERS = '.hs-grid-scroll, .headstart-scroll';
  const clipper = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== 'visible') return p;
      if (p === root) return null;
    }
    return null;
  };
  const problems = [];
  for (const el of root.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;  // not displayed
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden') continue;
    // A canvas (bqplot's WebGL layer) is transparent; a chart's parts are held by its drawing.
    if (el.tagName === 'CANVAS') continue;
    const inner = el instanceof SVGElement && el.ownerSVGElement;
    const scrolled = el.parentElement && el.parentElement.closest(SCROLLERS);
    if (!inner && !scrolled && box.right > edge) {
      problems.push(`sticks out by ${Math.round(box.right - edge)} px: ${name(el)}`);
    }
    const clip = clipper(el);
    const limit = clip && clip.getBoundingClientRect().right + 1;
    if (clip && !clip.matches(SCROLLERS) && box.right > limit) {
      problems.push(`${name(clip)} hides ${Math.round(box.right - limit)} px of ${name(el)}`);
    }
    const leaf = el.children.length === 0 || el.tagName === 'BUTTON';
    const clips = style.overflowX !== 'visible' && !el.matches(SCROLLERS);
    if (leaf && clips && el.scrollWidth > el.clientWidth + 1) {
      problems.push(`cut by ${el.scrollWidth - el.clientWidth} px: ${name(el)}`);
    }
    if (el.tagName === 'SELECT' && el.size <= 1 && el.selectedIndex >= 0) {
      const shown = el.options[el.selectedIndex].text;
      // The arrow and the padding take about 24 px of a drop-down.
      if (textWidth(el, shown) + 24 > el.clientWidth) problems.push(`cut: ${name(el)} shows "${shown}"`);
    }
    if (el.tagName === 'INPUT' && ['text', 'search', 'number'].includes(el.type)) {
      const shown = el.value || el.placeholder;
      // Chrome keeps about 1em at the end of a search box for its clear button, shown or not.
      const button = el.type === 'search' ? parseFloat(style.fontSize) : 0;
      const room = el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - button;
      if (shown && textWidth(el, shown) > room - 1) {
        problems.push(`cut: ${name(el)} shows "${shown}"`);
      }
    }
  }
  return problems.concat(chartProblems(root));
}
"""

# A chart's words, as a person reads them: an axis's labels do not run into each other or into the
# cells, stay inside their drawing, and a number written in a heatmap cell contrasts with the cell.
# A slanted label is compared in its own frame (the inverse of one label's matrix times the other's),
# so two neighbours slanted alike overlap only when their words do.
CHART_PROBLEMS = r"""
function chartProblems(root) {
  const problems = [];
  const frameBox = (el) => el.getBBox();
  const corners = (b) => [
    [b.x, b.y], [b.x + b.width, b.y], [b.x, b.y + b.height], [b.x + b.width, b.y + b.height],
  ];
  const overlap = (a, b) => {
    const m = a.getScreenCTM().inverse().multiply(b.getScreenCTM());
    const points = corners(frameBox(b)).map(([x, y]) => new DOMPoint(x, y).matrixTransform(m));
    const xs = points.map((p) => p.x), ys = points.map((p) => p.y), box = frameBox(a);
    return Math.min(...xs) < box.x + box.width - 1 && Math.max(...xs) > box.x + 1 &&
      Math.min(...ys) < box.y + box.height - 1 && Math.max(...ys) > box.y + 1;
  };
  const midline = (el) => {
    const b = frameBox(el), m = el.getScreenCTM();
    const y = b.y + b.height / 2;
    const along = [...Array(11).keys()].map((i) => new DOMPoint(b.x + (b.width * i) / 10, y));
    return along.map((p) => p.matrixTransform(m));
  };
  const inside = (p, r) => p.x > r.left + 1 && p.x < r.right - 1 && p.y > r.top + 1 && p.y < r.bottom - 1;
  const luminance = (color) => {
    const [r, g, b] = (color.match(/[\d.]+/g) || ['0', '0', '0']).slice(0, 3).map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  for (const svg of root.querySelectorAll('.bqplot svg')) {
    const frame = svg.getBoundingClientRect();
    if (frame.width === 0 || frame.height === 0) continue;
    const cells = [...svg.querySelectorAll('.heatmapcell')].map((c) => [c, c.getBoundingClientRect()]);
    const axes = new Map();
    for (const text of svg.querySelectorAll('.tick text')) {
      const box = text.getBoundingClientRect();
      if (!text.textContent.trim() || box.width === 0) continue;
      const axis = text.closest('.tick').parentElement;
      if (!axes.has(axis)) axes.set(axis, []);
      axes.get(axis).push(text);
      if (box.left < frame.left - 1 || box.right > frame.right + 1 || box.bottom > frame.bottom + 1) {
        problems.push(`chart label past its drawing: "${text.textContent}"`);
      }
      const line = midline(text);
      if (cells.some(([, r]) => line.some((p) => inside(p, r)))) {
        problems.push(`chart label over the cells: "${text.textContent}"`);
      }
    }
    for (const texts of axes.values()) {
      for (let i = 1; i < texts.length; i++) {
        if (overlap(texts[i - 1], texts[i])) {
          problems.push(`chart labels overlap: "${texts[i - 1].textContent}" and "${texts[i].textContent}"`);
        }
      }
    }
    for (const label of svg.querySelectorAll('.heatmapcell_label')) {
      if (!label.textContent.trim()) continue;
      const box = label.getBoundingClientRect();
      const centre = { x: (box.left + box.right) / 2, y: (box.top + box.bottom) / 2 };
      const under = cells.find(([, r]) => inside(centre, r));
      if (!under) continue;
      const fills = [getComputedStyle(label).fill, getComputedStyle(under[0]).fill];
      const [light, dark] = fills.map(luminance).sort((a, b) => b - a);
      // WCAG's contrast ratio; 3 is its floor for large text and for a chart's graphics.
      if ((light + 0.05) / (dark + 0.05) < 3) {
        problems.push(`a cell's number hardly shows: "${label.textContent}" (${fills.join(' on ')})`);
      }
    }
  }
  return problems;
}
"""
CHECKS = PROBLEMS.replace("(root) => {", "(root) => {" + CHART_PROBLEMS, 1)

VISIBLE_CHARTS = """
(root) => [...root.querySelectorAll('.bqplot')].filter(f => f.getBoundingClientRect().height > 0).length
"""


def notebook() -> dict[str, Any]:
    cells = [("setup", SETUP), *WIDGETS]
    return {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {"name": name},
                "execution_count": None,
                "outputs": [],
                "source": code.strip(),
            }
            for name, code in cells
        ],
        "metadata": {"kernelspec": {"name": "headstart", "display_name": "Python 3 (headstart)"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def prepare_home(hub: Hub) -> None:
    """Dana's home before her first sign-in: the notebook, and the lab settings of the browser tests."""
    home = hub.home / "hub" / "users" / USER
    (home / "look.ipynb").parent.mkdir(parents=True, exist_ok=True)
    (home / "look.ipynb").write_text(json.dumps(notebook()))
    settings = home / ".jupyter" / "lab" / "user-settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))


class Look:
    def __init__(self, browser: Any, hub: Hub) -> None:
        self.context = browser.new_context(viewport={"width": WIDTHS[0], "height": HEIGHT})
        self.context.set_default_timeout(DEFAULT_MS)
        self.page = self.context.new_page()
        self.hub = hub

    def open(self) -> None:
        page = self.page
        page.goto(f"{self.hub.url}hub/login")
        page.fill("input[name=username]", USER)
        page.fill("input[name=password]", self.hub.password)
        page.click("#login_submit")
        page.wait_for_url(re.compile(rf"/user/{USER}/"), timeout=SPAWN_MS)
        page.goto(f"{self.hub.url}user/{USER}/lab/tree/look.ipynb")
        kernel = page.locator(".jp-NotebookPanel .jp-Toolbar-kernelName")
        kernel.filter(has_text="Python 3 (headstart)").wait_for(timeout=SPAWN_MS)

    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(index)

    def output(self, index: int) -> Any:
        return self.cell(index).locator(".jp-OutputArea-output").last

    def run_all(self) -> None:
        page = self.page
        for index in range(len(WIDGETS) + 1):
            cell = self.cell(index)
            cell.scroll_into_view_if_needed()
            cell.locator(".jp-InputPrompt").first.click()
            page.keyboard.press("Escape")
            page.keyboard.press("Shift+Enter")
            prompt = cell.locator(".jp-InputArea-prompt").first
            deadline = time.monotonic() + (6 if index == 0 else 1) * CELL_MS / 1000
            while not re.fullmatch(r"\[\d+\]:", prompt.inner_text().strip()):
                assert time.monotonic() < deadline, f"cell {index} did not finish"
                time.sleep(0.25)
            text = cell.locator(".jp-OutputArea").inner_text()
            assert "Traceback" not in text, text
        # The widgets' views are drawn: each widget cell shows its widget.
        for index in range(1, len(WIDGETS) + 1):
            self.output(index).locator(".jupyter-widgets").first.wait_for(timeout=CELL_MS)

    def theme(self, label: str) -> None:
        page = self.page
        page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Theme$")).hover()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(label)}$")).click()
        light = "true" if label == THEMES["light"] else "false"
        page.locator(f"body[data-jp-theme-light='{light}']").wait_for(state="attached", timeout=DEFAULT_MS)
        time.sleep(1.0)  # the theme's stylesheet applies after the attribute

    def close(self) -> None:
        self.context.close()


def test_every_widget_reads_in_both_themes_at_both_widths(demo_hub: Hub, browser: Any) -> None:
    shutil.rmtree(LOOK, ignore_errors=True)
    LOOK.mkdir(parents=True)
    prepare_home(demo_hub)
    look = Look(browser, demo_hub)
    try:
        look.open()
        look.run_all()
        visible = catalog(demo_hub, "alice", "headstart/models")
        models = visible["items"] if isinstance(visible, dict) else visible
        public = [m for m in models if m["public"]]  # what dana, new, may see: the public models
        problems: list[str] = []
        for theme, label in THEMES.items():
            look.theme(label)
            for width in WIDTHS:
                look.page.set_viewport_size({"width": width, "height": HEIGHT})
                time.sleep(1.0)
                for index, (name, _) in enumerate(WIDGETS, start=1):
                    output = look.output(index)
                    output.scroll_into_view_if_needed()
                    time.sleep(0.6)  # bqplot redraws a chart to its new width once it is in view
                    output.screenshot(path=str(LOOK / f"{index:02d}-{name}-{theme}-{width}.png"))
                    problems += [f"{name}, {theme}, {width} px: {p}" for p in output.evaluate(CHECKS)]
                check_contents(look, public)
        assert problems == []
    finally:
        look.close()


def check_contents(look: Look, public: list[dict[str, Any]]) -> None:
    """The grids have their columns and rows, and the empty chart its message and no axes."""
    names = [name for name, _ in WIDGETS]
    picker = look.output(names.index("model-picker") + 1)
    titles = picker.locator(".hs-grid-table th .hs-grid-sort").all_inner_texts()
    assert [t.strip() for t in titles] == MODEL_TITLES
    rows = picker.locator("tr.hs-grid-row")
    assert rows.count() == len(public) >= 3
    assert sorted(rows.locator("td:first-child").all_inner_texts()) == sorted(m["name"] for m in public)
    # The chosen model's row is marked, and its details are beside the grid.
    chosen = picker.locator("tr.hs-grid-row[aria-selected='true']")
    assert chosen.count() == 1 and chosen.locator("td").first.inner_text() == DEMO_MODEL
    # A long label list is summarised in its cell, and says all of itself on hover.
    imagenet = picker.locator("tr.hs-grid-row", has_text="imagenet-lite0").locator("td").nth(3)
    assert imagenet.inner_text().endswith("(1000)") and imagenet.get_attribute("title").count(",") >= 199

    empty = look.output(names.index("leaderboard-empty") + 1)
    assert "select models to compare" in empty.inner_text()
    assert empty.evaluate(VISIBLE_CHARTS) == 0, "an empty leaderboard draws a chart"
    compared = look.output(names.index("leaderboard-compare") + 1)
    assert compared.evaluate(VISIBLE_CHARTS) == 1
    assert compared.locator("tr.hs-grid-row[aria-selected='true']").count() == 1

    dashboard = look.output(names.index("training-dashboard") + 1)
    assert dashboard.get_by_role("button", name="Keep both").is_visible()
    assert not dashboard.get_by_role("button", name="Cancel").is_visible()

    sweep = look.output(names.index("sweep-board") + 1)
    assert sweep.locator("tr.hs-grid-row").count() == 2
    assert sweep.locator("button", has_text=re.compile(r"^\W*Keep$")).is_visible()

    added = look.output(names.index("add-dataset") + 1)
    assert "added dataset dana-shapes-" in added.inner_text() and "done" in added.inner_text()
    assert added.locator(".progress-bar-success, .widget-progress .progress-bar").count() >= 1

    # A cell not probed yet is grey, as the legend says: never black, bqplot's colour for a NaN.
    benchmark = look.output(names.index("benchmark") + 1)
    fills = benchmark.locator(".heatmapcell").evaluate_all(
        "cells => cells.map(c => getComputedStyle(c).fill)"
    )
    assert fills and "rgb(0, 0, 0)" not in fills, fills

    evaluate = look.output(names.index("evaluate") + 1)
    assert evaluate.locator(".heatmapcell").count() >= 100  # Fashion-MNIST's 10 by 10, or more
