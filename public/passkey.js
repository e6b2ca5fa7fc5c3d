// Passkeys on the account pages (server-rendered; the chat's WASM is not
// loaded there). Buttons with data-passkey="signin" or "register" start a
// ceremony: ask the server for options, let the browser's authenticator
// answer, send the answer back. The pages work without this script; the
// buttons stay hidden where passkeys cannot work.
(function () {
  "use strict";
  if (!window.PublicKeyCredential) return;

  function bytes(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var raw = atob(b64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out.buffer;
  }
  function b64url(buffer) {
    var raw = "", view = new Uint8Array(buffer);
    for (var i = 0; i < view.length; i++) raw += String.fromCharCode(view[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function post(url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body || {}),
      credentials: "same-origin",
    }).then(function (res) {
      if (res.ok) return res.status === 204 ? null : res.json();
      return res.text().then(function (why) { throw new Error(why || res.statusText); });
    });
  }
  function say(button, text) {
    var out = document.getElementById(button.getAttribute("aria-describedby") || "");
    if (out) out.textContent = text;
  }

  function signIn(button) {
    return post("/api/auth/passkeys/signin/start").then(function (start) {
      var options = start.publicKey;
      options.challenge = bytes(options.challenge);
      return navigator.credentials.get({ publicKey: options }).then(function (cred) {
        var r = cred.response;
        return post("/api/auth/passkeys/signin/finish", {
          token: start.token,
          id: b64url(cred.rawId),
          client_data: b64url(r.clientDataJSON),
          authenticator_data: b64url(r.authenticatorData),
          signature: b64url(r.signature),
          user_handle: r.userHandle ? b64url(r.userHandle) : null,
        });
      });
    }).then(function () {
      window.location.assign(button.getAttribute("data-next") || "/");
    });
  }

  function register(button) {
    var nameInput = document.getElementById("passkey-name");
    return post("/api/auth/passkeys/register/start").then(function (start) {
      var options = start.publicKey;
      options.challenge = bytes(options.challenge);
      options.user.id = bytes(options.user.id);
      options.excludeCredentials = options.excludeCredentials.map(function (c) {
        return { type: c.type, id: bytes(c.id) };
      });
      return navigator.credentials.create({ publicKey: options }).then(function (cred) {
        return post("/api/auth/passkeys/register/finish", {
          token: start.token,
          name: nameInput ? nameInput.value : "",
          id: b64url(cred.rawId),
          client_data: b64url(cred.response.clientDataJSON),
          attestation_object: b64url(cred.response.attestationObject),
        });
      });
    }).then(function () {
      window.location.assign("/settings?ok=" + encodeURIComponent("Passkey added."));
    });
  }

  document.querySelectorAll("[data-passkey]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var run = button.getAttribute("data-passkey") === "register" ? register : signIn;
      button.disabled = true;
      say(button, "");
      run(button).catch(function (err) {
        button.disabled = false;
        say(button, err && err.name === "NotAllowedError"
          ? "The passkey request was cancelled or timed out."
          : String(err && err.message || err));
      });
    });
  });
})();
