// Loaded before the ipywidgets static manager (vendor/html-manager/embed-amd.js); added by book/_ext/offline_plotly.py.
(function () {
  // The manager finds its icon fonts relative to the address RequireJS gives its modules, which is beside the page
  // unless RequireJS is told where the manager lives (vendor/html-manager/). RequireJS reads a `require` object
  // defined before it loads as its configuration.
  var here = document.currentScript && document.currentScript.src;
  if (here) {
    var manager = new URL("../vendor/html-manager/", here).href;
    window.__jupyter_widgets_assets_path__ = manager;
    if (typeof window.require === "undefined") {
      window.require = { paths: { "@jupyter-widgets/html-manager/dist": manager.replace(/\/$/, "") } };
    }
  }
  // The manager typesets widget labels with MathJax 2's API (MathJax.Hub.Queue); the book serves MathJax 3.
  function shim() {
    var mj = window.MathJax;
    if (mj && !mj.Hub) {
      mj.Hub = {
        Queue: function (command) {
          var element = command && command[2];
          if (window.MathJax.typesetPromise) window.MathJax.typesetPromise(element ? [element] : undefined).catch(function () {});
        },
      };
    }
  }
  shim();
  var tries = 0;
  var timer = setInterval(function () {
    shim();
    if ((window.MathJax && window.MathJax.version) || ++tries > 400) clearInterval(timer);
  }, 25);
})();
