// headstart's Table (grid.py) in the browser: it draws the rows the kernel sends and tells the
// kernel what the user did. Sorting, filtering and formatting happen in the kernel.

function heading(model, column, index) {
  const th = document.createElement("th");
  th.className = `hs-grid-head hs-grid-${column.align}`;
  th.setAttribute("role", "columnheader");
  const title = document.createElement("button");
  title.className = "hs-grid-sort";
  title.type = "button";
  title.textContent = column.title;
  title.title = `sort by ${column.title}`;
  title.addEventListener("click", () => {
    const sort = model.get("sort") || {};
    // Ascending, then descending, then the order the kernel gave.
    let next = { column: index, descending: false };
    if (sort.column === index) next = sort.descending ? {} : { column: index, descending: true };
    model.set("sort", next);
    model.save_changes();
  });
  const filter = document.createElement("input");
  filter.className = "hs-grid-filter";
  filter.type = "search";
  filter.placeholder = "filter";
  filter.title =
    column.align === "right"
      ? `filter ${column.title}: a number, or a comparison such as >0.9, <=20k, >=85%`
      : `filter ${column.title}: rows holding every word typed`;
  filter.setAttribute("aria-label", `filter ${column.title}`);
  filter.value = (model.get("filters") || [])[index] || "";
  let timer = null;
  filter.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const filters = [...(model.get("filters") || [])];
      filters[index] = filter.value;
      model.set("filters", filters);
      model.save_changes();
    }, 150);
  });
  th.append(title, filter);
  return th;
}

function body(model, tbody, status) {
  const columns = model.get("columns");
  const rows = model.get("rows");
  const selected = new Set((model.get("selected") || []).map(String));
  tbody.replaceChildren();
  for (const row of rows) {
    const tr = document.createElement("tr");
    tr.className = "hs-grid-row";
    tr.dataset.key = String(row.key);
    tr.tabIndex = 0;
    tr.setAttribute("aria-selected", selected.has(String(row.key)) ? "true" : "false");
    row.cells.forEach((cell, i) => {
      const td = document.createElement("td");
      td.className = `hs-grid-cell hs-grid-${columns[i].align}`;
      td.textContent = cell.text;
      if (cell.tip) td.title = cell.tip;
      tr.append(td);
    });
    const choose = (event) => {
      let keys = [...(model.get("selected") || [])];
      const at = keys.findIndex((k) => String(k) === String(row.key));
      if (model.get("multiple")) {
        if (at >= 0) keys.splice(at, 1);
        else keys.push(row.key);
      } else {
        keys = at >= 0 && event.type === "click" ? [] : [row.key];
      }
      model.set("selected", keys);
      model.save_changes();
    };
    tr.addEventListener("click", choose);
    tr.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        choose(event);
      } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const next = event.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling;
        if (next) next.focus();
      }
    });
    tbody.append(tr);
  }
  const total = model.get("total");
  const plural = (n) => `${n} row${n === 1 ? "" : "s"}`;
  status.textContent = rows.length
    ? rows.length === total
      ? plural(total)
      : `${rows.length} of ${plural(total)}`
    : total
      ? `no rows match the filters (${total} in all)`
      : model.get("empty");
  status.classList.toggle("hs-grid-none", rows.length === 0);
}

function marks(model, thead) {
  const sort = model.get("sort") || {};
  thead.querySelectorAll("th").forEach((th, i) => {
    const sorted = sort.column === i;
    th.setAttribute("aria-sort", sorted ? (sort.descending ? "descending" : "ascending") : "none");
    th.querySelector(".hs-grid-sort").dataset.arrow = sorted ? (sort.descending ? "▼" : "▲") : "";
  });
}

export default {
  render({ model, el }) {
    el.classList.add("hs-grid");
    const scroller = document.createElement("div");
    scroller.className = "hs-grid-scroll";
    const table = document.createElement("table");
    table.className = "hs-grid-table";
    table.setAttribute("role", "grid");
    const thead = document.createElement("thead");
    const tbody = document.createElement("tbody");
    table.append(thead, tbody);
    scroller.append(table);
    const status = document.createElement("div");
    status.className = "hs-grid-status";
    el.append(scroller, status);

    const head = () => {
      const tr = document.createElement("tr");
      model.get("columns").forEach((column, i) => tr.append(heading(model, column, i)));
      thead.replaceChildren(tr);
      marks(model, thead);
    };
    const height = () => {
      scroller.style.maxHeight = model.get("max_height");
    };
    const redraw = () => body(model, tbody, status);
    head();
    height();
    redraw();
    const sorted = () => marks(model, thead);
    model.on("change:columns", head);
    model.on("change:sort", sorted);
    model.on("change:max_height", height);
    model.on("change:rows", redraw);
    model.on("change:selected", redraw);
    return () => {
      model.off("change:columns", head);
      model.off("change:sort", sorted);
      model.off("change:max_height", height);
      model.off("change:rows", redraw);
      model.off("change:selected", redraw);
    };
  },
};
