// Loaded just before RequireJS on pages with widgets (nb_ipywidgets_js in _config.yml).
// The ipywidgets static manager finds its icon fonts relative to the address RequireJS gives its modules, which is
// beside the page unless RequireJS is told where the manager lives (vendor/html-manager/). RequireJS reads a
// `require` object defined before it loads as its configuration. (Only here: on a page without RequireJS, such an
// object would stay behind and stop MathJax from starting.)
(function () {
  var here = document.currentScript && document.currentScript.src;
  if (!here || typeof window.require !== "undefined") return;
  var manager = new URL("../vendor/html-manager/", here).href;
  window.__jupyter_widgets_assets_path__ = manager;
  window.require = { paths: { "@jupyter-widgets/html-manager/dist": manager.replace(/\/$/, "") } };
})();
