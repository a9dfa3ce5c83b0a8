// Draws every server-built Plotly figure on the page from its json_script element.
document.querySelectorAll(".plot[data-figure]").forEach(function (element) {
  var source = document.getElementById(element.dataset.figure.replace(/^figure-/, ""));
  if (!source) return;
  var figure = JSON.parse(source.textContent);
  Plotly.newPlot(element, figure.data, figure.layout, {responsive: true, displaylogo: false});
});
