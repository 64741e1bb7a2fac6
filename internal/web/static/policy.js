// Live password checklist (progressive enhancement; the server checks again).
// For each [data-policy-input] field, marks the items of its [data-policy-list]
// with data-state="ok" or "ko" as the user types, and fills each item's
// .sr-state span from its data-ok / data-ko text for screen readers. Items the
// page leaves out are skipped; "common" is checked by the server only.
(function () {
  'use strict';

  const isAlnum = (c) => /^[A-Za-z0-9]$/.test(c);

  // Each test gets the password as an array of code points and the item.
  const tests = {
    length: (cps, li) => {
      // Optional data-normalize="NFKC": count as the server does for that preset.
      const n = li.dataset.normalize ? Array.from(cps.join('').normalize(li.dataset.normalize)).length : cps.length;
      const min = parseInt(li.dataset.min, 10) || 0;
      const max = parseInt(li.dataset.max, 10) || Infinity;
      return n >= min && n <= max;
    },
    upper: (cps) => cps.some((c) => c >= 'A' && c <= 'Z'),
    lower: (cps) => cps.some((c) => c >= 'a' && c <= 'z'),
    digit: (cps) => cps.some((c) => c >= '0' && c <= '9'),
    special: (cps, li) => cps.some((c) => (li.dataset.chars || '').includes(c)),
    allowed: (cps, li) => cps.every((c) => isAlnum(c) || (li.dataset.chars || '').includes(c)),
  };

  // state is true, false, or null (nothing typed: no verdict).
  function mark(li, state) {
    const sr = li.querySelector('.sr-state');
    if (state === null) {
      li.removeAttribute('data-state');
      if (sr) sr.textContent = '';
      return;
    }
    li.setAttribute('data-state', state ? 'ok' : 'ko');
    if (sr) sr.textContent = (state ? sr.dataset.ok : sr.dataset.ko) || '';
  }

  function listFor(input) {
    const described = (input.getAttribute('aria-describedby') || '').split(/\s+/)
      .map((i) => document.getElementById(i))
      .find((el) => el && el.matches('[data-policy-list]'));
    return described || (input.form || document).querySelector('[data-policy-list]');
  }

  function setUp(input) {
    const list = listFor(input);
    if (!list) return;
    const confirm = (input.form || document).querySelector('[data-policy-confirm]');

    function update() {
      const pw = input.value;
      const cps = Array.from(pw);
      list.querySelectorAll('li[data-rule]').forEach((li) => {
        const rule = li.dataset.rule;
        if (rule === 'match') {
          if (confirm) mark(li, confirm.value === '' ? null : confirm.value === pw);
        } else if (tests[rule]) {
          mark(li, pw === '' ? null : tests[rule](cps, li));
        }
      });
    }

    input.addEventListener('input', update);
    if (confirm) confirm.addEventListener('input', update);
    // Values the browser restored or autofilled; an empty field keeps the
    // marks the server set after a refused submission.
    if (input.value !== '') update();
  }

  document.querySelectorAll('[data-policy-input]').forEach(setUp);
})();
