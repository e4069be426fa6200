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
// Long pages: a strip of links to the page's sections (each card with an id and a heading).
(function () {
  document.querySelectorAll('nav[data-sections]').forEach(function (strip) {
    document.querySelectorAll('main .card[id]').forEach(function (card) {
      var heading = card.querySelector('h2');
      if (!heading || strip.querySelector('a[href="#' + card.id + '"]')) return;
      var link = document.createElement('a');
      link.href = '#' + card.id;
      link.textContent = heading.textContent.trim();
      strip.appendChild(link);
    });
  });
})();
