// The rule form: only the fields of the chosen kind are shown (and sent), and the rule is
// checked as it is filled in: the server answers with its problems, the rule in words, its
// minimum detectable effect and the noise warning, before anything is saved.
(function () {
  var form = document.getElementById("rule-edit");
  if (!form) return;
  var kind = form.querySelector("select[name=kind]");
  var box = document.getElementById("rule-check");
  var pending = null;
  var asked = 0;

  function showKindFields() {
    form.querySelectorAll("label[data-kinds]").forEach(function (label) {
      var shown = label.dataset.kinds.split(" ").indexOf(kind.value) >= 0;
      label.hidden = !shown;
      label.querySelectorAll("input, select").forEach(function (field) { field.disabled = !shown; });
    });
    var chosen = kind.options[kind.selectedIndex];
    document.getElementById("kind-help").textContent = chosen.dataset.help || "";
    document.getElementById("min-count-words").textContent = kind.value === "no_data"
      ? "Fires below this many per window" : "Fewest observations to judge a window";
  }

  function paragraph(text, className) {
    var p = document.createElement("p");
    p.className = className;
    p.textContent = text;
    return p;
  }

  function show(answer) {
    var errors = Object.keys(answer.errors || {}).map(function (field) {
      return field + ": " + answer.errors[field].join(" ");
    });
    document.getElementById("rule-words").textContent = answer.words || "";
    document.getElementById("rule-sensitivity").textContent = answer.sensitivity || "";
    var warnings = document.getElementById("rule-warnings");
    warnings.replaceChildren();
    errors.forEach(function (text) { warnings.appendChild(paragraph(text, "error small")); });
    (answer.warnings || []).forEach(function (text) {
      var p = paragraph("⚠ " + text, "rule-warning");
      p.id = "noise-warning";
      p.setAttribute("role", "note");
      warnings.appendChild(p);
    });
    box.classList.toggle("noisy", (answer.warnings || []).length > 0);
    box.dataset.checked = String(asked);
  }

  function check() {
    var query = new URLSearchParams(new FormData(form));
    query.delete("csrfmiddlewaretoken");
    var mine = ++asked;
    fetch(form.dataset.check + "?" + query.toString(), { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (answer) { if (mine === asked) show(answer); })
      .catch(function () {
        document.getElementById("rule-sensitivity").textContent = "The check could not be made.";
      });
  }

  function soon() {
    window.clearTimeout(pending);
    pending = window.setTimeout(check, 250);
  }

  kind.addEventListener("change", showKindFields);
  form.addEventListener("input", soon);
  form.addEventListener("change", soon);
  showKindFields();
  check();
})();
