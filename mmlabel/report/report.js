// The report's filters and heat maps; plain script, no library, nothing fetched.
(function () {
  "use strict";
  var posts = Array.prototype.slice.call(document.querySelectorAll("article.post"));
  var onlyErrors = document.getElementById("only-errors");
  var onlyDisagree = document.getElementById("only-disagree");
  var search = document.getElementById("search");
  var shown = document.getElementById("shown");

  function matches(post, query) {
    if (onlyErrors.checked && post.dataset.error !== "1") return false;
    if (onlyDisagree && onlyDisagree.checked && post.dataset.disagree !== "1") return false;
    if (!query) return true;
    return post.dataset.words.split(" ").some(function (word) { return word.indexOf(query) !== -1; });
  }

  function filter() {
    var query = search.value.trim().toLowerCase(), count = 0;
    posts.forEach(function (post) {
      var visible = matches(post, query);
      post.hidden = !visible;
      if (visible) count += 1;
    });
    shown.textContent = count + " of " + posts.length + " posts";
  }

  // A span's heat: one hexadecimal digit per grid cell (0: none, f: the strongest), drawn on a canvas of
  // columns x rows pixels stretched over the photo.
  function hideHeat(span) {
    var post = span.closest("article.post"), canvas = post.querySelector("canvas.heat");
    if (canvas) canvas.hidden = true;
    span.classList.remove("showing");
    post.querySelector(".heat-caption").textContent = "";
  }

  function showHeat(span) {
    var post = span.closest("article.post"), photo = post.querySelector(".photo");
    var image = photo.querySelector("img"), canvas = photo.querySelector("canvas.heat");
    if (!image || !canvas) return;
    var size = span.dataset.grid.split("x"), rows = +size[0], columns = +size[1], heat = span.dataset.heat;
    canvas.width = columns; canvas.height = rows;  // stretched over the photo by the stylesheet
    var context = canvas.getContext("2d"), pixels = context.createImageData(columns, rows);
    for (var cell = 0; cell < rows * columns; cell += 1) {
      var level = parseInt(heat.charAt(cell), 16) || 0;
      pixels.data.set([255, 40, 0, Math.round(level / 15 * 160)], cell * 4);
    }
    context.putImageData(pixels, 0, 0);
    canvas.hidden = false;
    post.querySelectorAll(".span.showing").forEach(function (other) { other.classList.remove("showing"); });
    span.classList.add("showing");
    photo.querySelector(".heat-caption").textContent =
      "attention of \u201c" + span.firstChild.textContent + "\u201d (" + span.dataset.run + ")";
  }

  // The filters can be set from the address: report.html#errors&disagree&search=word.
  window.location.hash.replace(/^#/, "").split("&").forEach(function (part) {
    var pair = part.split("="), value = decodeURIComponent(pair[1] || "");
    if (pair[0] === "errors") onlyErrors.checked = true;
    else if (pair[0] === "disagree" && onlyDisagree) onlyDisagree.checked = true;
    else if (pair[0] === "search") search.value = value;
  });
  onlyErrors.addEventListener("change", filter);
  if (onlyDisagree) onlyDisagree.addEventListener("change", filter);
  search.addEventListener("input", filter);
  // The photo stays plain: a span's heat map is drawn over it only while the span is pointed at.
  document.addEventListener("mouseover", function (event) {
    var span = event.target.closest && event.target.closest(".span[data-heat]");
    if (span) showHeat(span);
  });
  document.addEventListener("mouseout", function (event) {
    var span = event.target.closest && event.target.closest(".span[data-heat]");
    if (span && !(event.relatedTarget && span.contains(event.relatedTarget))) hideHeat(span);
  });
  filter();
})();
