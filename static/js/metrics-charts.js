// Charts on the metrics pages, drawn with the vendored Chart.js (static/vendor/chart.js).
//
// Markup: <canvas data-chart="ID"> inside a sized .chart-box, and a data island
// <script type="application/json" id="ID">{"type": "line"|"bar", "labels": [...],
// "datasets": [{"key", "label", "data": [...]}]}</script> (JSON is not executed, so the
// page's CSP, script-src 'self', allows it). Machine series are drawn dashed and grey-toned so
// human and machine engagement read apart at a glance. Charts resize with their box (phones).
(function () {
  "use strict";

  if (typeof window.Chart === "undefined") {
    return;
  }
  var COLORS = {
    opens_human: "#1f5f8b",
    opens_machine: "#8fb3cc",
    clicks_human: "#1c7c3a",
    clicks_machine: "#9ccfab",
    contacts: "#1f5f8b",
    list_joins: "#1c7c3a",
    opt_outs: "#b42318",
    suppressions: "#9a6700"
  };

  function dataset(spec, type) {
    var color = COLORS[spec.key] || "#5b6570";
    var machine = /_machine$/.test(spec.key);
    return {
      label: spec.label,
      data: spec.data,
      borderColor: color,
      backgroundColor: color,
      borderDash: machine ? [6, 4] : [],
      borderWidth: 2,
      pointRadius: type === "line" ? 2 : 0,
      tension: 0.2,
      fill: false
    };
  }

  function draw(canvas) {
    var island = document.getElementById(canvas.getAttribute("data-chart"));
    if (!island) {
      return;
    }
    var spec;
    try {
      spec = JSON.parse(island.textContent);
    } catch (error) {
      return;
    }
    var type = spec.type === "bar" ? "bar" : "line";
    new window.Chart(canvas, {
      type: type,
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map(function (d) { return dataset(d, type); })
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
        scales: {
          x: { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 8 } },
          y: { beginAtZero: true, ticks: { precision: 0 } }
        }
      }
    });
  }

  var canvases = document.querySelectorAll("canvas[data-chart]");
  for (var i = 0; i < canvases.length; i++) {
    draw(canvases[i]);
  }
})();
