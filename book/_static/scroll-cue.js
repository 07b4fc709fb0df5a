// A table wider than the screen scrolls sideways inside its box; on a phone nothing shows
// that columns are hidden. Mark each such box (class h2q-scrolls) so that narrow-tables.css
// shows a cue above it; checked again when the window changes size.
(function () {
  function mark() {
    var boxes = document.querySelectorAll(
      "article .output.text_html, article .table-wrapper, article .pasted-inline");
    boxes.forEach(function (box) {
      var scrolls = box.scrollWidth > box.clientWidth + 1 && box.querySelector("table");
      box.classList.toggle("h2q-scrolls", Boolean(scrolls));
    });
  }
  window.addEventListener("load", mark);
  window.addEventListener("resize", mark);
  document.addEventListener("DOMContentLoaded", mark);
})();
