// The shell: the menu button under 900 px, and menus that close on a click elsewhere or Escape.
(function () {
  var toggle = document.querySelector('.menu-toggle');
  var menu = document.getElementById('shell-menu');
  if (toggle && menu) {
    toggle.addEventListener('click', function () {
      var open = toggle.getAttribute('aria-expanded') !== 'true';
      toggle.setAttribute('aria-expanded', String(open));
      menu.classList.toggle('open', open);
    });
  }
  function closeDropdowns(except) {
    document.querySelectorAll('details.dropdown[open]').forEach(function (d) { if (d !== except) d.removeAttribute('open'); });
  }
  document.addEventListener('click', function (e) { closeDropdowns(e.target.closest('details.dropdown')); });
  document.addEventListener('keydown', function (e) { if (e.key === 'Escape') closeDropdowns(null); });
})();
