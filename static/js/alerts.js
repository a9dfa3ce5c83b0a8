// The alerts page: "select all" ticks every open alert on the page, and the bulk button is
// usable only while at least one alert is ticked.
(function () {
  var form = document.getElementById("alerts-form");
  var button = document.getElementById("acknowledge-selected");
  var all = document.getElementById("select-all");
  if (!form || !button) return;
  var boxes = form.querySelectorAll("input[name=alert]");
  function refresh() {
    var ticked = Array.prototype.filter.call(boxes, function (box) { return box.checked; });
    button.disabled = ticked.length === 0;
    button.textContent = ticked.length
      ? "Acknowledge " + ticked.length + " selected alert" + (ticked.length === 1 ? "" : "s")
      : "Acknowledge the selected alerts";
    if (all) all.checked = boxes.length > 0 && ticked.length === boxes.length;
  }
  boxes.forEach(function (box) { box.addEventListener("change", refresh); });
  if (all) {
    all.disabled = boxes.length === 0;
    all.addEventListener("change", function () {
      boxes.forEach(function (box) { box.checked = all.checked; });
      refresh();
    });
  }
  refresh();
})();
