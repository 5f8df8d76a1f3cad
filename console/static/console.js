// Agent Router Console: progressive enhancement only. Every page works
// without this file; with it, the playground streams its answer, setup links
// fill in their code, and copy buttons copy.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // Setup link: the token travels in the fragment (never sent to the
  // server, so never in an access log); move it into the form and drop it
  // from the address bar.
  var token = document.getElementById("token");
  if (token && location.hash.length > 1) {
    token.value = decodeURIComponent(location.hash.slice(1));
    history.replaceState(null, "", location.pathname);
  }

  document.querySelectorAll("[data-copy]").forEach(function (b) {
    b.addEventListener("click", function () {
      var el = document.getElementById(b.getAttribute("data-copy"));
      el.select();
      if (navigator.clipboard) { navigator.clipboard.writeText(el.value); } else { document.execCommand("copy"); }
      b.textContent = "Copied";
    });
  });

  // Filters apply on change.
  document.querySelectorAll("#log-filters select, #usage-range select").forEach(function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
  });

  // Playground model list follows the chosen API key's profile.
  var keySel = document.querySelector("#chat-form #key");
  if (keySel) {
    keySel.addEventListener("change", function () {
      location.href = "/console/playground?key=" + encodeURIComponent(keySel.value);
    });
  }

  var form = document.getElementById("chat-form");
  if (form) { form.addEventListener("submit", streamChat); }
});

function streamChat(ev) {
  ev.preventDefault();
  var form = ev.target;
  var answer = document.getElementById("answer");
  var details = document.getElementById("details");
  var send = document.getElementById("send");
  var old = document.getElementById("chat-error");
  if (old) { old.remove(); }
  answer.textContent = "";
  details.textContent = "";
  send.disabled = true;
  var csrf = document.body.getAttribute("data-csrf");
  fetch("/console/playground/stream", {
    method: "POST",
    headers: { "X-CSRF-Token": csrf },
    body: new URLSearchParams(new FormData(form)),
    credentials: "same-origin"
  }).then(function (resp) {
    var id = resp.headers.get("X-Agent-Router-Request-Id");
    var ctype = resp.headers.get("Content-Type") || "";
    if (!ctype.startsWith("text/event-stream")) {
      return resp.text().then(function (t) {
        var msg = t;
        try { msg = JSON.parse(t).error.message; } catch (e) { /* plain text */ }
        if (!resp.ok) { showError(msg); } else {
          try { answer.textContent = JSON.parse(t).choices[0].message.content; } catch (e) { answer.textContent = t; }
        }
        return id;
      });
    }
    var reader = resp.body.getReader();
    var dec = new TextDecoder();
    var buf = "";
    function pump() {
      return reader.read().then(function (r) {
        if (r.done) { return id; }
        buf += dec.decode(r.value, { stream: true });
        var lines = buf.split("\n");
        buf = lines.pop();
        lines.forEach(function (line) {
          line = line.replace(/\r$/, "");
          if (line.indexOf("data: ") !== 0) { return; }
          var data = line.slice(6);
          if (data === "[DONE]") { return; }
          try {
            var ev = JSON.parse(data);
            if (ev.error) { showError(ev.error.message); return; }
            var c = ev.choices && ev.choices[0] && ev.choices[0].delta && ev.choices[0].delta.content;
            if (c) { answer.textContent += c; }
          } catch (e) { /* not JSON: ignore */ }
        });
        return pump();
      });
    }
    return pump();
  }).then(function (id) {
    if (!id) { return; }
    return fetch("/console/playground/result/" + encodeURIComponent(id), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (html) { details.innerHTML = html; });
  }).catch(function (e) {
    showError("The request failed: " + e.message);
  }).finally(function () { send.disabled = false; });
}

function showError(msg) {
  var p = document.createElement("p");
  p.className = "error";
  p.id = "chat-error";
  p.setAttribute("role", "alert");
  p.textContent = msg;
  var box = document.getElementById("answer-box");
  box.insertBefore(p, document.getElementById("answer"));
}
