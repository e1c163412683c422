// The dashboard's style sheet: a light theme, system fonts, no images.

export const APP_CSS = String.raw`:root {
  --fg: #1d2330; --muted: #5b6475; --bg: #f6f7f9; --card: #ffffff; --line: #d8dce3;
  --accent: #1f5fbf; --accent-fg: #ffffff; --danger: #b3261e; --in: #1f5fbf; --out: #d9730d; --conn: #2e7d32;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace;
}
* { box-sizing: border-box; }
html, body { margin: 0; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg); background: var(--bg); }
h1 { font-size: 20px; margin: 0 0 12px; }
h2 { font-size: 16px; margin: 0; }
h3 { font-size: 14px; margin: 16px 0 6px; }
code, pre, .mono { font-family: var(--mono); font-size: 13px; }
button { font: inherit; padding: 5px 12px; border: 1px solid var(--line); border-radius: 4px; background: var(--card); color: var(--fg); cursor: pointer; }
button:hover:not(:disabled) { border-color: var(--accent); }
button:disabled { opacity: .55; cursor: default; }
button[type=submit], button.primary { background: var(--accent); border-color: var(--accent); color: var(--accent-fg); }
button.danger { color: var(--danger); border-color: var(--danger); }
button.danger:hover:not(:disabled) { background: var(--danger); color: #fff; }
input, select, textarea { font: inherit; padding: 4px 8px; border: 1px solid var(--line); border-radius: 4px; background: #fff; color: var(--fg); }
textarea { font-family: var(--mono); width: 100%; }
:focus-visible { outline: 2px solid var(--accent); outline-offset: 1px; }
.top { display: flex; align-items: center; gap: 12px; padding: 8px 20px; background: var(--card); border-bottom: 1px solid var(--line); }
.brand { font-weight: 700; font-size: 17px; color: var(--accent); }
.spacer { flex: 1; }
.muted { color: var(--muted); }
.error { color: var(--danger); min-height: 1.4em; margin: 6px 0; }
.banner { margin: 8px 20px 0; padding: 6px 10px; border: 1px solid var(--danger); border-radius: 4px; background: #fdf0ef; }
.ok { color: var(--conn); }
.login { max-width: 420px; margin: 60px auto; padding: 24px; background: var(--card); border: 1px solid var(--line); border-radius: 6px; }
.login form { display: flex; flex-direction: column; gap: 8px; }
.tabs { display: flex; gap: 2px; padding: 0 20px; background: var(--card); border-bottom: 1px solid var(--line); flex-wrap: wrap; }
.tabs button { border: 0; border-bottom: 3px solid transparent; border-radius: 0; padding: 10px 14px; background: transparent; }
.tabs button[aria-selected=true] { border-bottom-color: var(--accent); color: var(--accent); font-weight: 600; }
main { padding: 16px 20px 40px; }
.row { display: flex; align-items: center; gap: 8px; flex-wrap: wrap; margin: 8px 0; }
.stack { display: flex; flex-direction: column; gap: 6px; max-width: 760px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 10px; margin-bottom: 16px; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; display: flex; flex-direction: column; }
.tile .label { color: var(--muted); font-size: 12px; }
.tile .value { font-size: 17px; font-weight: 600; font-variant-numeric: tabular-nums; }
.chart { margin: 0 0 16px; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.chart figcaption { color: var(--muted); font-size: 12px; margin-bottom: 4px; }
.chart canvas { display: block; width: 100%; }
#chart-rates { height: 200px; }
#chart-connections { height: 130px; }
.key::before { content: ""; display: inline-block; width: 10px; height: 3px; margin: 0 4px 3px 6px; vertical-align: middle; }
.key.in::before { background: var(--in); }
.key.out::before { background: var(--out); }
.scroll { overflow: auto; }
table.grid { border-collapse: collapse; width: 100%; background: var(--card); border: 1px solid var(--line); }
.grid th, .grid td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
.grid th { background: #eef1f5; font-weight: 600; font-size: 12px; }
.grid td.num, .grid th.num { text-align: right; font-variant-numeric: tabular-nums; }
.grid tbody tr.clickable { cursor: pointer; }
.grid tbody tr.clickable:hover, .grid tbody tr[aria-selected=true] { background: #eaf1fc; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; margin-top: 14px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 10px 0; }
.facts.wide { grid-template-columns: max-content 1fr max-content 1fr max-content 1fr; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; font-variant-numeric: tabular-nums; word-break: break-all; }
.split { display: grid; grid-template-columns: minmax(260px, 2fr) 3fr; gap: 16px; align-items: start; }
.split .card { margin-top: 0; }
.list { max-height: 70vh; }
#page-ws .scroll { max-height: 60vh; }
.payload { background: #f3f5f8; border: 1px solid var(--line); border-radius: 4px; padding: 10px; max-height: 50vh; overflow: auto; white-space: pre-wrap; word-break: break-all; margin: 8px 0 0; }
fieldset { border: 1px solid var(--line); border-radius: 4px; padding: 6px 10px; }
legend { color: var(--muted); font-size: 12px; }
.tree ul { list-style: none; margin: 0; padding-left: 18px; }
.tree > ul { padding-left: 0; }
.tree li { margin: 1px 0; }
.tree summary { cursor: pointer; }
.tree .leaf { padding-left: 14px; }
.tree .path { color: var(--muted); font-size: 12px; margin-left: 6px; }
.badge { display: inline-block; min-width: 18px; padding: 0 5px; margin-left: 6px; border-radius: 9px; font-size: 11px; text-align: center; border: 1px solid var(--line); }
.badge.r { background: #fff4e5; border-color: #e8b86d; color: #7a4b00; }
.badge.s { background: #e8f3ea; border-color: #8cc295; color: #1f5a25; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
[hidden] { display: none !important; }
@media (max-width: 800px) { .split { grid-template-columns: 1fr; } }
`;
