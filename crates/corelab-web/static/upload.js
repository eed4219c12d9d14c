// corelab upload page: sends the chosen files in batches with a progress bar. Without this file
// the form posts once and the answer page lists every file; the server does the same either way.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) return;
  var BATCH_FILES = 40;
  var BATCH_BYTES = 64 * 1024 * 1024;
  var panel = document.getElementById("upload-progress");
  var bar = document.getElementById("upload-bar");
  var status = document.getElementById("upload-status");
  var summary = document.getElementById("upload-summary");
  var button = form.querySelector("button[type=submit]");

  function mb(n) {
    return (n / (1024 * 1024)).toFixed(1) + " MB";
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  var LABELS = {
    stored: "✓ Stored",
    already_stored: "✓ Already stored",
    inbox: "Kept in the inbox",
    refused: "✗ Refused",
    skipped: "Skipped: not a DICOM image"
  };
  var CLASSES = { stored: "ok", already_stored: "ok", inbox: "warn", refused: "bad", skipped: "warn" };

  function batches(files) {
    var out = [];
    var cur = [];
    var size = 0;
    files.forEach(function (f) {
      if (cur.length && (cur.length >= BATCH_FILES || size + f.size > BATCH_BYTES)) {
        out.push(cur);
        cur = [];
        size = 0;
      }
      cur.push(f);
      size += f.size;
    });
    if (cur.length) out.push(cur);
    return out;
  }

  function send(batch, csrf, onBytes) {
    return new Promise(function (resolve) {
      var data = new FormData();
      // The anti-CSRF token must come first.
      data.append("csrf", csrf);
      batch.forEach(function (f) {
        data.append("files", f, f.webkitRelativePath || f.name);
      });
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) onBytes(e.loaded / e.total);
      };
      xhr.onload = function () {
        var body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (err) {
          body = null;
        }
        resolve({ status: xhr.status, body: body });
      };
      xhr.onerror = function () {
        resolve({ status: 0, body: null });
      };
      xhr.send(data);
    });
  }

  form.addEventListener("submit", function (ev) {
    var files = [];
    form.querySelectorAll("input[type=file]").forEach(function (input) {
      Array.prototype.forEach.call(input.files, function (f) {
        files.push(f);
      });
    });
    if (!files.length) return; // the server's answer says what to do
    ev.preventDefault();
    var csrf = form.querySelector("input[name=csrf]").value;
    var total = files.reduce(function (s, f) { return s + f.size; }, 0);
    var counts = { stored: 0, already_stored: 0, inbox: 0, refused: 0, skipped: 0 };
    var doneFiles = 0;
    var doneBytes = 0;
    panel.hidden = false;
    button.disabled = true;
    summary.replaceChildren();
    var problems = el("ul", undefined, "upload-problems");
    summary.appendChild(problems);

    function show(extraBytes) {
      var bytes = doneBytes + extraBytes;
      var pct = total ? Math.round((100 * bytes) / total) : 100;
      bar.value = pct;
      bar.textContent = pct + "%";
      status.textContent =
        doneFiles + " of " + files.length + " files, " + mb(bytes) + " of " + mb(total) + " sent";
    }
    function finish(stopped) {
      button.disabled = false;
      var p = el("p", undefined, "upload-counts");
      p.textContent =
        "Done: " + counts.stored + " stored, " + counts.already_stored + " already stored, " + counts.inbox +
        " kept in the inbox, " + counts.refused + " refused, " + counts.skipped + " skipped.";
      summary.insertBefore(p, problems);
      if (stopped) {
        var d = el("div", undefined, "problem");
        d.setAttribute("role", "alert");
        d.appendChild(el("p", "The upload stopped: " + stopped));
        summary.insertBefore(d, problems);
      }
      form.reset();
    }

    var queue = batches(files);
    (function next(i) {
      if (i >= queue.length) return finish(null);
      var batch = queue[i];
      var size = batch.reduce(function (s, f) { return s + f.size; }, 0);
      show(0);
      send(batch, csrf, function (frac) { show(frac * size); }).then(function (r) {
        if (r.status !== 200 || !r.body || !r.body.files) {
          var msg = r.body && r.body.error ? r.body.error.message : r.body && r.body.stopped;
          return finish(
            (msg || (r.status ? "the server answered " + r.status : "the connection failed")) +
              ". Reload the page and send the files not stored yet again (files stored before are recognised)."
          );
        }
        r.body.files.forEach(function (f) {
          counts[f.outcome] = (counts[f.outcome] || 0) + 1;
          if (f.outcome !== "stored" && f.outcome !== "already_stored") {
            var li = el("li");
            li.appendChild(el("code", f.name));
            li.appendChild(document.createTextNode(" "));
            li.appendChild(el("span", LABELS[f.outcome] || f.outcome, "fate " + (CLASSES[f.outcome] || "")));
            li.appendChild(document.createTextNode(" " + f.reason));
            problems.appendChild(li);
          }
        });
        doneFiles += batch.length;
        doneBytes += size;
        show(0);
        next(i + 1);
      });
    })(0);
  });
})();
