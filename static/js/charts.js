// Draws every server-built Plotly figure on the page from its json_script element.
// A click on a point opens the rows behind that window (the figure's meta.rows_url).
document.querySelectorAll(".plot[data-figure]").forEach(function (element) {
  var source = document.getElementById(element.dataset.figure);
  if (!source) return;
  var figure = JSON.parse(source.textContent);
  Plotly.newPlot(element, figure.data, figure.layout, {responsive: true, displaylogo: false});
  // A heatmap's cell opens its row's page (a feature of the drift heatmap).
  var rowUrls = figure.layout.meta && figure.layout.meta.row_urls;
  if (rowUrls) {
    element.on("plotly_click", function (event) {
      var point = event.points[0];
      var url = point && point.pointNumber && rowUrls[point.pointNumber[0]];
      if (url) window.location.href = url;
    });
  }
  var rowsUrl = figure.layout.meta && figure.layout.meta.rows_url;
  if (!rowsUrl) return;
  element.on("plotly_click", function (event) {
    var point = event.points[0];
    if (!point || !point.customdata) return;
    var start = new Date(point.x.replace(" ", "T") + "Z").toISOString();
    window.location.href = rowsUrl + "&start=" + encodeURIComponent(start) +
      "&end=" + encodeURIComponent(point.customdata[1]);
  });
});
// A link to #metric-NAME (from an alert e-mail) scrolls to that chart once drawn.
if (window.location.hash) {
  var target = document.getElementById(decodeURIComponent(window.location.hash.slice(1)));
  if (target) { target.classList.add("focused"); target.scrollIntoView(); }
}
