"""The page `GET /` serves: type a post, drop a photo, see the spans highlighted in the text. One self-contained
HTML document (inline style and script, no external resource). A link may prefill it and tag at once:
`/#text=...&image=data:image/png;base64,...` (the image as a data URL, read by the browser, never by the server),
with `&attention` to draw the fusion head's attention of each span over the photo (hover a span to see its own).

The page speaks to a person, not to a client of the API: the model in words ("text encoder: hf", not
`text_encoder`), word positions counted from 1 and inclusive ("words 3-4", where the API's `start`/`end` are 2 and 4),
and the server's refusals said in the page's terms (`in_page_terms`: "choose an image", not "give 'image'")."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mmlabel</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 16px/1.5 system-ui, sans-serif; margin: 2em auto; max-width: 56em; padding: 0 1em; color: #1f2328; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
#model { color: #57606a; font-size: 0.9em; }
#model b { color: #1f2328; }
textarea { width: 100%; min-height: 5em; font: inherit; box-sizing: border-box; }
#drop { border: 2px dashed #8c959f; border-radius: 8px; padding: 1em; margin: 0.8em 0; text-align: center; }
#drop.over { background: #f0f6ff; }
#photo { position: relative; display: inline-block; margin: 0.5em auto 0; }
#preview { max-width: 16em; max-height: 12em; display: none; }
#heat { position: absolute; left: 0; top: 0; pointer-events: none; }
button { font: inherit; padding: 0.4em 1.4em; }
#result { font-size: 1.2em; margin: 1em 0; padding: 0.8em; border-radius: 8px; background: #f6f8fa; min-height: 1.5em; }
mark { padding: 0.1em 0.25em; border-radius: 4px; background: #c8d7ff; }
mark::after { content: attr(data-label); font-size: 0.6em; margin-left: 0.3em; vertical-align: super; }
mark.POS { background: #7be08a; } mark.NEU { background: #ffd84d; } mark.NEG { background: #ff8a80; }
#error { color: #cf222e; }
table { border-collapse: collapse; } td, th { padding: 0.2em 0.8em; border-bottom: 1px solid #d0d7de; }
</style></head>
<body>
<h1>mmlabel</h1>
<div id="model">loading the model's description...</div>
<form id="form">
<p><textarea id="text" name="text" placeholder="Type a post, e.g. Kevin Durant joins the Warriors!"></textarea></p>
<div id="drop">Drop a photo here or <input type="file" id="image" accept="image/*"><br>
<span id="photo"><img id="preview" alt=""><canvas id="heat" width="0" height="0"></canvas></span></div>
<button type="submit" id="tag">Tag</button>
<label><input type="checkbox" id="attend"> attention over the photo</label> <span id="error"></span>
</form>
<div id="result"></div>
<table id="spans"></table>
<script>
"use strict";
let photo = null;
const $ = (id) => document.getElementById(id);

function showPhoto(blob) {
  photo = blob;
  $("preview").src = URL.createObjectURL(blob);
  $("preview").style.display = "block";
}

// the parts of the model as a person names them (the keys of /model's "components" are recipe keys)
const PARTS = {"text_encoder": "text encoder", "image_encoder": "photo encoder", "fusion_head": "fusion",
               "alignment_loss": "alignment loss", "data.tag_scheme": "tag scheme"};

async function describe() {
  const answer = await fetch("/model");
  if (!answer.ok) throw new Error("the server did not describe its model (" + answer.status + ")");
  const model = await answer.json();
  const f1 = (split) => (model[split] && model[split].f1 !== undefined) ? model[split].f1.toFixed(1) : "-";
  const parts = Object.entries(model.components)
    .map(([key, name]) => (PARTS[key] || key.split(".").pop().replaceAll("_", " ")) + ": " + name).join(" \\u00b7 ");
  const run = document.createElement("b");
  run.textContent = model.run;
  $("model").replaceChildren("Model ", run, (model.multimodal ? ", reads the text and the photo" : ", reads the text only") +
    ". " + parts + ". Labels: " + model.labels.join(", ") + ". F1 on dev " + f1("dev") + ", on test " + f1("test") + ".");
}

function position(span) {
  // the API's word indices are 0-based, end exclusive; a person counts from 1, both ends included
  return span.end - span.start === 1 ? "word " + (span.start + 1) : "words " + (span.start + 1) + "\\u2013" + span.end;
}

function inPageTerms(error) {
  // the server's refusals name the API's fields ('image', 'text'); the page has a photo and a post
  if (/reads images/.test(error)) return "This model reads photos: choose an image (drop one above, or pick a file).";
  const over = /request is over the limit of ([\\d,]+) bytes/.exec(error);
  if (over) return "The photo is too large: this server takes at most " +
    (Number(over[1].replaceAll(",", "")) / 1048576).toFixed(1) + " MB.";
  const line = error.replace(/^post( \\d+)?: /, "").replaceAll("'text'", "the post")
    .replaceAll("'image'", "the photo").replaceAll("the image", "the photo");
  return line.charAt(0).toUpperCase() + line.slice(1);
}

function render(result) {
  const box = $("result"), text = result.text;
  box.replaceChildren();
  let at = 0;
  for (const span of result.spans) {
    box.append(document.createTextNode(text.slice(at, span.start_char)));
    const mark = document.createElement("mark");
    mark.className = span.label;
    mark.dataset.label = span.label;
    mark.textContent = text.slice(span.start_char, span.end_char);
    box.append(mark);
    at = span.end_char;
  }
  box.append(document.createTextNode(text.slice(at)));
  const grid = result.attention_grid, marks = box.querySelectorAll("mark");
  if (grid) result.spans.forEach((s, i) => marks[i].addEventListener("mouseenter", () => heat(s.attention, grid)));
  heat(grid && result.spans.length ? result.spans[0].attention : "", grid);
  const rows = result.spans.map((s) => "<tr><td></td><td></td><td></td></tr>").join("");
  $("spans").innerHTML = "<tr><th>span</th><th>label</th><th>where</th></tr>" + rows;
  result.spans.forEach((s, i) => {
    const cells = $("spans").rows[i + 1].cells;
    cells[0].textContent = s.text || s.words; cells[1].textContent = s.label; cells[2].textContent = position(s);
  });
  box.dataset.done = String(result.spans.length);
}

function heat(cells, grid) {
  // one hexadecimal digit per grid cell (0-f, the strongest cell f), drawn as red squares over the photo
  const img = $("preview"), canvas = $("heat"), context = canvas.getContext("2d");
  canvas.width = img.clientWidth; canvas.height = img.clientHeight;
  context.clearRect(0, 0, canvas.width, canvas.height);
  canvas.dataset.drawn = cells || "";
  if (!cells) return;
  const w = canvas.width / grid.columns, h = canvas.height / grid.rows;
  for (let i = 0; i < cells.length; i++) {
    context.fillStyle = "rgba(220, 0, 0, " + (0.65 * parseInt(cells[i], 16) / 15).toFixed(3) + ")";
    context.fillRect((i % grid.columns) * w, Math.floor(i / grid.columns) * h, w, h);
  }
}

async function tag(event) {
  if (event) event.preventDefault();
  $("error").textContent = "";
  if (!$("text").value.trim()) { refuse("Type a post first."); return; }
  const form = new FormData();
  form.append("text", $("text").value);
  if (photo) form.append("image", photo, "photo");
  if (photo && $("attend").checked) form.append("attention", "true");
  const answer = await fetch("/predict/form", {method: "POST", body: form});
  const body = await answer.json().catch(() => ({error: "the server answered " + answer.status}));
  if (!answer.ok) { refuse(inPageTerms(body.error)); return; }
  render(body);
}

function refuse(reason) {
  $("error").textContent = reason;
  $("result").dataset.done = "error";
}

async function fromLink() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (!params.has("text")) return;
  $("text").value = params.get("text");
  if (params.has("image")) showPhoto(await (await fetch(params.get("image"))).blob());
  $("attend").checked = params.has("attention");
  await new Promise((done) => { if ($("preview").complete) done(); else $("preview").onload = done; });
  await tag();
}

$("form").addEventListener("submit", tag);
$("image").addEventListener("change", () => { if ($("image").files[0]) showPhoto($("image").files[0]); });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files[0]) showPhoto(e.dataTransfer.files[0]);
});
describe().then(fromLink).catch((e) => { $("error").textContent = String(e); });
</script>
</body></html>
"""
