(function () {
  var box = document.getElementById("filter");
  var rows = document.querySelectorAll("[data-name]");
  box.parentNode.hidden = false;
  box.addEventListener("input", function () {
    var q = box.value.trim().toLowerCase();
    for (var i = 0; i < rows.length; i++) {
      rows[i].hidden = q !== "" && rows[i].getAttribute("data-name").indexOf(q) < 0;
    }
  });
  document.body.setAttribute("data-ready", "1");
})();
