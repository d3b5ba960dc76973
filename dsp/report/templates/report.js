// Sorting, filtering, searching and paging of the example cards, and the pair and highlight pickers.
// Plain JavaScript reading the cards' data attributes; with JavaScript off the page shows every card as it is.
(() => {
  "use strict";
  const list = document.getElementById("cards");
  const form = document.getElementById("controls");
  if (!list || !form) return;
  const PAGE = 50;
  const cards = Array.from(list.children);
  const ui = {};
  for (const id of ["q", "pair", "sort", "show", "hl", "prev", "next", "status"]) ui[id] = document.getElementById(id);
  const texts = new Map();
  let page = 0;

  const score = (card, key) => {
    const v = card.getAttribute("data-s-" + key);
    return v === null ? null : parseFloat(v);
  };
  const pairKeys = () => (ui.pair ? ui.pair.value.split("|") : null);
  const delta = (card) => {
    const keys = pairKeys();
    if (!keys) return null;
    const a = score(card, keys[0]), b = score(card, keys[1]);
    return a === null || b === null ? null : a - b;
  };
  const text = (card) => {
    if (!texts.has(card)) texts.set(card, card.textContent.toLowerCase());
    return texts.get(card);
  };

  function kept(card) {
    const q = ui.q.value.trim().toLowerCase();
    if (q && card.dataset.id.toLowerCase() !== q && !text(card).includes(q)) return false;
    const d = delta(card);
    switch (ui.show.value) {
      case "a": return d !== null && d > 0;
      case "b": return d !== null && d < 0;
      case "tie": return d !== null && d === 0;
      case "failed": return card.querySelector(".answer.failed, .answer.unanswered") !== null;
      default: return true;
    }
  }

  function ordered(shown) {
    const how = ui.sort.value;
    if (how === "order") return shown;
    const value = how.startsWith("s:") ? (c) => score(c, how.slice(2)) : delta;
    const dir = how === "delta-asc" ? 1 : -1;
    // missing values (a failed call, an absent example) go last whichever way
    return shown.map((c) => [c, value(c)])
      .sort((x, y) => (x[1] === null) - (y[1] === null) || (x[1] === null ? 0 : dir * (x[1] - y[1])))
      .map((x) => x[0]);
  }

  function labelPair() {
    if (!ui.pair) return;
    const opt = ui.pair.selectedOptions[0];
    const a = opt.dataset.a, b = opt.dataset.b;
    ui.show.querySelector('option[value="a"]').textContent = a + " scored higher than " + b;
    ui.show.querySelector('option[value="b"]').textContent = a + " scored lower than " + b;
    for (const fig of document.querySelectorAll("figure.examples")) fig.hidden = fig.dataset.pair !== ui.pair.value;
  }

  function update() {
    const shown = ordered(cards.filter(kept));
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    page = Math.min(Math.max(page, 0), pages - 1);
    const visible = new Set(shown.slice(page * PAGE, (page + 1) * PAGE));
    const rest = cards.filter((c) => !visible.has(c));
    const frag = document.createDocumentFragment();
    for (const c of [...visible, ...rest]) {
      c.hidden = !visible.has(c);
      frag.appendChild(c);
    }
    list.appendChild(frag);
    const label = ui.pair ? ui.pair.selectedOptions[0].textContent : "";
    for (const c of visible) {
      const d = delta(c);
      c.querySelector(".delta .dl").textContent = d === null ? "" : label;
      c.querySelector(".delta .dv").textContent = d === null ? "" : (d > 0 ? "+" : "") + d.toFixed(1);
    }
    const first = shown.length ? page * PAGE + 1 : 0;
    ui.status.textContent = first + "–" + (page * PAGE + visible.size) + " of " + shown.length
      + (shown.length < cards.length ? " shown (" + cards.length + " in all)" : "");
    ui.prev.disabled = page === 0;
    ui.next.disabled = page >= pages - 1;
  }

  let timer = null;
  ui.q.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { page = 0; update(); }, 120); });
  for (const el of [ui.sort, ui.show]) el.addEventListener("change", () => { page = 0; update(); });
  if (ui.pair) ui.pair.addEventListener("change", () => { labelPair(); page = 0; update(); });
  if (ui.hl) ui.hl.addEventListener("change", () => { document.body.dataset.hl = ui.hl.value; });
  ui.prev.addEventListener("click", () => { page -= 1; update(); });
  ui.next.addEventListener("click", () => { page += 1; update(); });
  form.addEventListener("submit", (e) => e.preventDefault());
  // a chart's bar links to a card that may sit on another page or be closed
  window.addEventListener("hashchange", () => {
    const card = document.getElementById(location.hash.slice(1));
    if (!card || !card.classList.contains("card")) return;
    ui.q.value = ""; ui.show.value = "all"; ui.sort.value = "order";
    page = Math.floor(cards.indexOf(card) / PAGE);
    update();
    card.open = true;
    card.scrollIntoView();
  });
  form.hidden = false;
  labelPair();
  update();
})();
