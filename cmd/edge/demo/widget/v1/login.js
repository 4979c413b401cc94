/*! EdgeLogin demo widget v1: a stand-in for a real login library, served by edge. */
(function (global) {
  "use strict";

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") {
        node.textContent = attrs[name];
      } else {
        node.setAttribute(name, attrs[name]);
      }
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  function field(label, type, name, autocomplete) {
    return el("label", { style: "display:block;margin:.5rem 0" }, [
      el("span", { text: label, style: "display:block;font-size:.9rem;color:#555" }),
      el("input", { type: type, name: name, autocomplete: autocomplete, required: "required",
        style: "width:100%;padding:.5rem;border:1px solid #ccc;border-radius:4px" })
    ]);
  }

  function render(root, tenant) {
    root.textContent = "";
    var form = el("form", { method: "post", action: tenant.login_url, novalidate: "novalidate" }, [
      el("h2", { text: "Log in to " + tenant.name, style: "margin-top:0" }),
      field("Email", "email", "username", "username"),
      field("Password", "password", "password", "current-password"),
      el("button", { type: "submit", text: "Continue",
        style: "margin-top:1rem;padding:.6rem 1.2rem;border:0;border-radius:4px;color:#fff;background:" + tenant.theme.primary_color })
    ]);
    if (tenant.connections && tenant.connections.length) {
      var list = el("p", { style: "font-size:.9rem;color:#555" });
      list.textContent = "Or continue with: " + tenant.connections.map(function (c) { return c.display_name; }).join(", ");
      form.appendChild(list);
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      root.appendChild(el("p", { text: "Demo only: nothing was sent.", style: "color:#a33" }));
    });
    root.appendChild(form);
  }

  function fail(root, err) {
    root.textContent = "The login widget could not load its configuration: " + err.message;
  }

  global.EdgeLogin = {
    version: "1.0.0",
    mount: function (root, configURL) {
      return fetch(configURL, { credentials: "omit" })
        .then(function (res) {
          if (!res.ok) { throw new Error("HTTP " + res.status); }
          return res.json();
        })
        .then(function (tenant) { render(root, tenant); })
        .catch(function (err) { fail(root, err); });
    }
  };
})(typeof window !== "undefined" ? window : this);
