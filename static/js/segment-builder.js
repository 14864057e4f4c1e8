// The segment builder: operators that fit each field, add/remove condition rows, live count.
//
// Markup: <form id="segment-form" data-ops='{"field": ["op", ...]}' data-no-value='[...]'
// data-preview-url="..."> with <li class="rule-row"> rows of .rule-field, .rule-key, .rule-op,
// .rule-value inputs named field-N, key-N, op-N, value-N. Without JavaScript the form posts its
// fixed rows and a "Count matches" button shows the count; this script only enhances it.
(function () {
  "use strict";

  var form = document.getElementById("segment-form");
  if (!form) {
    return;
  }
  var ops = JSON.parse(form.dataset.ops || "{}");
  var noValue = JSON.parse(form.dataset.noValue || "[]");
  var rowsList = document.getElementById("rule-rows");
  var addButton = document.getElementById("add-rule");
  var output = document.getElementById("preview-count");
  var previewUrl = form.dataset.previewUrl;
  var csrf = form.querySelector("input[name=csrf_token]");
  var datalists = { list: "list-names", tag: "tag-names", consent_email: "consent-values",
                    consent_sms: "consent-values" };
  var timer = null;
  var sequence = 0;

  function rows() {
    return Array.prototype.slice.call(rowsList.querySelectorAll(".rule-row"));
  }

  function part(row, name) {
    return row.querySelector(".rule-" + name);
  }

  // Show only the operators the chosen field takes, the custom name box only for custom
  // fields, and the value box only for operators that need a value.
  function fitRow(row) {
    var field = part(row, "field").value;
    var opSelect = part(row, "op");
    var allowed = ops[field] || null;
    var firstAllowed = null;
    Array.prototype.forEach.call(opSelect.options, function (option) {
      var ok = !allowed || allowed.indexOf(option.value) >= 0;
      option.hidden = !ok;
      option.disabled = !ok;
      if (ok && firstAllowed === null) {
        firstAllowed = option.value;
      }
    });
    if (allowed && allowed.indexOf(opSelect.value) < 0 && firstAllowed !== null) {
      opSelect.value = firstAllowed;
    }
    part(row, "key").hidden = field !== "custom";
    var value = part(row, "value");
    value.hidden = !field || noValue.indexOf(opSelect.value) >= 0;
    if (datalists[field]) {
      value.setAttribute("list", datalists[field]);
    } else {
      value.removeAttribute("list");
    }
    value.placeholder = ["within_days", "not_within_days"].indexOf(opSelect.value) >= 0 ?
      "days" : (opSelect.value === "before" || opSelect.value === "after" ? "YYYY-MM-DD" : "value");
  }

  function isBlank(row) {
    return !part(row, "field").value;
  }

  // Keep every filled row and one blank row visible; hide the other blank rows.
  function tidy() {
    var shownBlank = false;
    rows().forEach(function (row) {
      var blank = isBlank(row);
      row.hidden = blank && shownBlank;
      if (blank) {
        shownBlank = true;
      }
      row.querySelector(".rule-remove").hidden = blank;
    });
    addButton.hidden = false;
  }

  function renumber(row, index) {
    row.dataset.index = index;
    Array.prototype.forEach.call(row.querySelectorAll("[id], [name], label[for]"), function (el) {
      ["id", "name", "for"].forEach(function (attr) {
        var value = el.getAttribute(attr);
        if (value) {
          el.setAttribute(attr, value.replace(/-\d+$/, "-" + index));
        }
      });
    });
  }

  function addRow() {
    var hidden = rows().filter(function (row) { return row.hidden && isBlank(row); })[0];
    var row = hidden;
    if (!row) {
      var all = rows();
      row = all[all.length - 1].cloneNode(true);
      var next = all.reduce(function (max, r) { return Math.max(max, Number(r.dataset.index)); }, 0) + 1;
      renumber(row, next);
      Array.prototype.forEach.call(row.querySelectorAll("input"), function (input) { input.value = ""; });
      part(row, "field").value = "";
      var error = row.querySelector(".field-error");
      if (error) {
        error.remove();
      }
      row.classList.remove("has-error");
      rowsList.appendChild(row);
    }
    row.hidden = false;
    fitRow(row);
    part(row, "field").focus();
  }

  function removeRow(row) {
    part(row, "field").value = "";
    part(row, "key").value = "";
    part(row, "value").value = "";
    fitRow(row);
    tidy();
    schedulePreview();
  }

  function showCount(text) {
    output.textContent = text;
  }

  function preview() {
    if (!previewUrl) {
      return;
    }
    var mine = ++sequence;
    var body = new FormData(form);
    body.delete("action");
    fetch(previewUrl, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf ? csrf.value : "", Accept: "application/json" }
    })
      .then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      })
      .then(function (result) {
        if (mine !== sequence) {
          return; // a newer request is on its way
        }
        if (result.ok) {
          var n = result.data.count;
          showCount(n.toLocaleString() + (n === 1 ? " contact matches." : " contacts match."));
        } else {
          var error = result.data.error || {};
          var details = error.details || {};
          var first = Object.keys(details).map(function (key) { return details[key]; })[0];
          showCount("Not counted: " + (error.message || "these rules are not valid") +
                    (first ? " (" + first + ")" : ""));
        }
      })
      .catch(function () {
        if (mine === sequence) {
          showCount("The count is not available right now.");
        }
      });
  }

  function schedulePreview() {
    window.clearTimeout(timer);
    timer = window.setTimeout(preview, 350);
  }

  form.addEventListener("change", function (event) {
    var row = event.target.closest(".rule-row");
    if (row && event.target.classList.contains("rule-field")) {
      fitRow(row);
      tidy();
    } else if (row && event.target.classList.contains("rule-op")) {
      fitRow(row);
    }
    schedulePreview();
  });
  form.addEventListener("input", function (event) {
    if (event.target.matches(".rule-value, .rule-key, textarea[name=rules_json]")) {
      schedulePreview();
    }
  });
  form.addEventListener("click", function (event) {
    if (event.target.classList.contains("rule-remove")) {
      removeRow(event.target.closest(".rule-row"));
    }
  });
  addButton.addEventListener("click", addRow);

  rows().forEach(fitRow);
  tidy();
  if (previewUrl) {
    preview();
  }
})();
