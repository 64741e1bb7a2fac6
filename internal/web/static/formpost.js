// form_post response mode: send the response to the application at once.
// Without JavaScript the page shows a button that does the same.
(function () {
  var f = document.querySelector("form[data-autosubmit]");
  if (f) { f.submit(); }
})();
