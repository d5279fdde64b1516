// Loaded before the ipywidgets static manager (vendor/html-manager/embed-amd.js); added by book/_ext/offline_plotly.py.
(function () {
  // The manager looks for its icon fonts beside the page unless told where it lives: beside itself, in vendor/.
  var here = document.currentScript && document.currentScript.src;
  if (here) window.__jupyter_widgets_assets_path__ = new URL("../vendor/html-manager/", here).href;
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
