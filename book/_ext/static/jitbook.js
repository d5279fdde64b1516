// Loaded on every page (book/_ext/offline_plotly.py). Pages with widgets also load jitbook-widgets.js.
(function () {
  // The manager typesets widget labels with MathJax 2's API (MathJax.Hub.Queue); the book serves MathJax 3.
  function shim() {
    var mj = window.MathJax;
    // Only on the loaded MathJax 3 object, never on the configuration object a page defines before MathJax loads.
    if (mj && mj.version && !mj.Hub) {
      mj.Hub = {
        Queue: function (command) {
          var element = command && command[2];
          if (window.MathJax.typesetPromise) window.MathJax.typesetPromise(element ? [element] : undefined).catch(function () {});
        },
      };
    }
  }
  var tries = 0;
  var timer = setInterval(function () {
    shim();
    if ((window.MathJax && window.MathJax.version) || ++tries > 400) clearInterval(timer);
  }, 25);
})();
