// The RECIST 1.1 read form beside the images: baseline lesion selection, or a follow-up's
// readings of the baseline lesions and new lesions. A measurement drawn on the images is attached
// to a lesion, which takes its diameter (long axis; short axis for a node) and its image
// reference (SOP Instance UID, frame, the end points in image pixels). The server checks and
// evaluates everything; this form only collects and shows.
import { $, el, fmtMm, say } from './util.js';

const NT_CALLS = [
  ['PRESENT', 'Present'],
  ['ABSENT', 'Absent'],
  ['UNEQUIVOCAL_PROGRESSION', 'Unequivocal progression'],
  ['NOT_EVALUATED', 'Not evaluated'],
];
const RESPONSES = { CR: 'complete response', PR: 'partial response', SD: 'stable disease', PD: 'progressive disease', NE: 'not evaluable', NON_CR_NON_PD: 'non-CR/non-PD', ND: 'no disease' };

const tenth = (x) => Math.round(x * 10) / 10;
const num = (v) => (v === '' || v === null || v === undefined ? null : Number(v));

export function createForm(opts) {
  const { task, host, measurements: mHost } = opts;
  const baseline = task.kind === 'baseline';
  const submitted = task.state === 'submitted';
  const baselineRead = (task.earlier || []).find((t) => t.kind === 'baseline')?.assessment || null;
  const last = task.versions?.length ? task.versions[task.versions.length - 1] : null;
  const start = (submitted ? last?.assessment : task.draft) || null;
  const measures = []; // {uid, kind, longMm, shortMm, slice, image, onCurrent, paneLabel, n}
  let counter = 0;
  let state = baseline ? fromBaseline(start) : fromFollowUp(start, baselineRead);

  function fromBaseline(a) {
    return {
      slice_thickness_mm: a?.slice_thickness_mm ?? null,
      targets: (a?.targets || []).map((t) => ({ ...t })),
      non_targets: (a?.non_targets || []).map((t) => ({ ...t })),
    };
  }

  function fromFollowUp(a, base) {
    const targets = {};
    for (const t of base?.targets || []) {
      const r = a?.targets?.[t.id];
      const v = r?.value;
      targets[t.id] = {
        id: t.id,
        mode: typeof v === 'number' ? 'measured' : typeof v === 'string' ? v : v ? 'other' : 'measured',
        value: typeof v === 'number' ? v : null,
        raw: v && typeof v === 'object' ? v : null,
        image: r?.image || null,
      };
    }
    const non_targets = {};
    for (const t of base?.non_targets || []) {
      non_targets[t.id] = { id: t.id, status: a?.non_targets?.[t.id]?.status || 'PRESENT', image: a?.non_targets?.[t.id]?.image || null };
    }
    return { targets, non_targets, new_lesions: (a?.new_lesions || []).map((n) => ({ ...n })) };
  }

  /** The assessment as the API takes it. */
  function collect() {
    if (baseline) {
      const lesion = (l) => {
        const o = { id: l.id, organ: (l.organ || '').trim(), is_node: !!l.is_node };
        if (l.diameter_mm !== null && l.diameter_mm !== undefined && l.diameter_mm !== '') o.diameter_mm = tenth(Number(l.diameter_mm));
        if (l.image) o.image = l.image;
        return o;
      };
      const out = { targets: state.targets.map(lesion), non_targets: state.non_targets.map(lesion) };
      if (state.slice_thickness_mm) out.slice_thickness_mm = tenth(Number(state.slice_thickness_mm));
      return out;
    }
    const targets = {};
    for (const [id, r] of Object.entries(state.targets)) {
      const value = r.mode === 'measured' ? (r.value === null ? null : tenth(Number(r.value))) : r.mode === 'other' ? r.raw : r.mode;
      targets[id] = { value };
      if (r.image) targets[id].image = r.image;
    }
    const non_targets = {};
    for (const [id, r] of Object.entries(state.non_targets)) {
      non_targets[id] = { status: r.status };
      if (r.image) non_targets[id].image = r.image;
    }
    const new_lesions = state.new_lesions.map((n) => {
      const o = { id: n.id, organ: (n.organ || '').trim(), is_node: !!n.is_node, equivocal: !!n.equivocal };
      if (n.diameter_mm !== null && n.diameter_mm !== undefined && n.diameter_mm !== '') o.diameter_mm = tenth(Number(n.diameter_mm));
      if (n.image) o.image = n.image;
      return o;
    });
    return { targets, non_targets, new_lesions };
  }

  const nextId = (prefix, list) => {
    let i = 1;
    while (list.some((l) => l.id === `${prefix}${i}`)) i += 1;
    return `${prefix}${i}`;
  };

  // ---- rendering -------------------------------------------------------------------------

  function input(attrs, onInput) {
    const i = el('input', { ...attrs, disabled: submitted });
    i.addEventListener('input', () => onInput(i.type === 'checkbox' ? i.checked : i.value));
    return i;
  }

  function field(label, control, hint) {
    const id = control.id;
    return el('div', { class: 'field' }, [el('label', { for: id }, [label]), control, ...(hint ? [el('span', { class: 'hint' }, [hint])] : [])]);
  }

  function imageCell(image, idBase) {
    if (!image) return el('span', { class: 'muted' }, ['not measured on the images']);
    const b = el('button', { type: 'button', class: 'linklike', id: `${idBase}-goto` }, [`Go to ${opts.describeImage(image)}`]);
    b.addEventListener('click', () => opts.goTo(image));
    return b;
  }

  function removeButton(label, onClick) {
    const b = el('button', { type: 'button', class: 'secondary', disabled: submitted }, [`Remove ${label}`]);
    b.addEventListener('click', onClick);
    return b;
  }

  function render() {
    const focusId = document.activeElement?.id;
    const parts = [];
    if (baseline) parts.push(...renderBaseline());
    else parts.push(...renderFollowUp());
    host.replaceChildren(...parts);
    renderMeasurements();
    if (focusId) document.getElementById(focusId)?.focus();
  }

  function lesionFieldset(kind, l, i, list) {
    const id = `${kind}-${i}`;
    const target = kind === 'target';
    const fs = el('fieldset', { class: 'lesion', id: `lesion-${l.id}` }, [el('legend', {}, [`${l.id} ${target ? 'target' : 'non-target'}`])]);
    fs.append(
      field('Organ', input({ id: `${id}-organ`, value: l.organ || '', autocomplete: 'off' }, (v) => (l.organ = v))),
      el('div', { class: 'field check' }, [
        input({ id: `${id}-node`, type: 'checkbox', checked: !!l.is_node }, (v) => {
          l.is_node = v;
          refreshFromMeasure(l);
        }),
        el('label', { for: `${id}-node` }, ['Lymph node (short axis)']),
      ]),
    );
    if (target) {
      fs.append(
        field(
          'Diameter (mm)',
          input({ id: `${id}-diameter`, type: 'number', step: '0.1', min: '0', inputmode: 'decimal', value: l.diameter_mm ?? '' }, (v) => (l.diameter_mm = num(v))),
          l.is_node ? 'short axis' : 'longest diameter',
        ),
      );
    }
    fs.append(el('p', { class: 'imgref' }, ['Image: ', imageCell(l.image, id)]));
    fs.append(
      removeButton(l.id, () => {
        list.splice(i, 1);
        render();
      }),
    );
    return fs;
  }

  function renderBaseline() {
    const out = [];
    out.push(
      field(
        'Slice thickness (mm)',
        input({ id: 'slice-thickness', type: 'number', step: '0.1', min: '0', value: state.slice_thickness_mm ?? '' }, (v) => (state.slice_thickness_mm = num(v))),
        'from the images; above 5 mm a non-nodal target must be at least twice this',
      ),
    );
    const t = el('section', { 'aria-labelledby': 'h-targets' }, [el('h3', { id: 'h-targets' }, [`Target lesions (${state.targets.length})`])]);
    state.targets.forEach((l, i) => t.append(lesionFieldset('target', l, i, state.targets)));
    const addT = el('button', { type: 'button', id: 'add-target', disabled: submitted }, ['Add target lesion']);
    addT.addEventListener('click', () => {
      state.targets.push({ id: nextId('T', state.targets), organ: '', is_node: false, diameter_mm: null });
      render();
      document.getElementById(`target-${state.targets.length - 1}-organ`)?.focus();
    });
    t.append(addT);
    const n = el('section', { 'aria-labelledby': 'h-nontargets' }, [el('h3', { id: 'h-nontargets' }, [`Non-target lesions (${state.non_targets.length})`])]);
    state.non_targets.forEach((l, i) => n.append(lesionFieldset('non-target', l, i, state.non_targets)));
    const addN = el('button', { type: 'button', id: 'add-non-target', disabled: submitted }, ['Add non-target lesion']);
    addN.addEventListener('click', () => {
      state.non_targets.push({ id: nextId('NT', state.non_targets), organ: '', is_node: false });
      render();
      document.getElementById(`non-target-${state.non_targets.length - 1}-organ`)?.focus();
    });
    n.append(addN);
    out.push(t, n);
    return out;
  }

  function baseLesion(id) {
    return [...(baselineRead?.targets || []), ...(baselineRead?.non_targets || [])].find((l) => l.id === id);
  }

  function renderFollowUp() {
    const out = [];
    if (!baselineRead) {
      out.push(el('p', { class: 'problem', role: 'alert' }, ['Your baseline read of this case is not available; submit the baseline first.']));
    }
    const t = el('section', { 'aria-labelledby': 'h-targets' }, [el('h3', { id: 'h-targets' }, ['Target lesions'])]);
    for (const [id, r] of Object.entries(state.targets)) {
      const b = baseLesion(id);
      const fs = el('fieldset', { class: 'lesion', id: `lesion-${id}` }, [el('legend', {}, [`${id} ${b?.organ || ''}${b?.is_node ? ' (node)' : ''}, baseline ${fmtMm(b?.diameter_mm)}`])]);
      if (b?.image) {
        const go = el('button', { type: 'button', id: `goto-baseline-${id}` }, [`Go to ${id} at baseline`]);
        go.addEventListener('click', () => opts.goTo(b.image));
        fs.append(go);
      }
      const sel = el('select', { id: `ft-${id}-mode`, disabled: submitted }, [
        el('option', { value: 'measured', selected: r.mode === 'measured' }, ['Measured']),
        el('option', { value: 'TOO_SMALL', selected: r.mode === 'TOO_SMALL' }, ['Too small to measure (5 mm)']),
        el('option', { value: 'NOT_EVALUATED', selected: r.mode === 'NOT_EVALUATED' }, ['Not evaluated']),
        ...(r.mode === 'other' ? [el('option', { value: 'other', selected: true }, ['As saved (split or merged)'])] : []),
      ]);
      sel.addEventListener('change', () => {
        r.mode = sel.value;
        render();
      });
      fs.append(field('Reading', sel));
      if (r.mode === 'measured') {
        fs.append(
          field(
            'Diameter (mm)',
            input({ id: `ft-${id}-diameter`, type: 'number', step: '0.1', min: '0', value: r.value ?? '' }, (v) => (r.value = num(v))),
            b?.is_node ? 'short axis' : 'longest diameter',
          ),
        );
      }
      fs.append(el('p', { class: 'imgref' }, ['Image: ', imageCell(r.image, `ft-${id}`)]));
      t.append(fs);
    }
    const n = el('section', { 'aria-labelledby': 'h-nontargets' }, [el('h3', { id: 'h-nontargets' }, ['Non-target lesions'])]);
    for (const [id, r] of Object.entries(state.non_targets)) {
      const b = baseLesion(id);
      const fs = el('fieldset', { class: 'lesion', id: `lesion-${id}` }, [el('legend', {}, [`${id} ${b?.organ || ''}`])]);
      if (b?.image) {
        const go = el('button', { type: 'button', id: `goto-baseline-${id}` }, [`Go to ${id} at baseline`]);
        go.addEventListener('click', () => opts.goTo(b.image));
        fs.append(go);
      }
      const sel = el('select', { id: `fn-${id}-status`, disabled: submitted }, NT_CALLS.map(([v, l]) => el('option', { value: v, selected: r.status === v }, [l])));
      sel.addEventListener('change', () => (r.status = sel.value));
      fs.append(field('Status', sel), el('p', { class: 'imgref' }, ['Image: ', imageCell(r.image, `fn-${id}`)]));
      n.append(fs);
    }
    const nl = el('section', { 'aria-labelledby': 'h-new' }, [el('h3', { id: 'h-new' }, [`New lesions (${state.new_lesions.length})`])]);
    state.new_lesions.forEach((l, i) => {
      const id = `new-${i}`;
      const fs = el('fieldset', { class: 'lesion', id: `lesion-${l.id}` }, [el('legend', {}, [`${l.id} new lesion`])]);
      fs.append(
        field('Organ', input({ id: `${id}-organ`, value: l.organ || '' }, (v) => (l.organ = v))),
        field('Diameter (mm, optional)', input({ id: `${id}-diameter`, type: 'number', step: '0.1', min: '0', value: l.diameter_mm ?? '' }, (v) => (l.diameter_mm = num(v)))),
        el('div', { class: 'field check' }, [input({ id: `${id}-equivocal`, type: 'checkbox', checked: !!l.equivocal }, (v) => (l.equivocal = v)), el('label', { for: `${id}-equivocal` }, ['Equivocal'])]),
        el('p', { class: 'imgref' }, ['Image: ', imageCell(l.image, id)]),
        removeButton(l.id, () => {
          state.new_lesions.splice(i, 1);
          render();
        }),
      );
      nl.append(fs);
    });
    const add = el('button', { type: 'button', id: 'add-new-lesion', disabled: submitted }, ['Add new lesion']);
    add.addEventListener('click', () => {
      state.new_lesions.push({ id: nextId('N', state.new_lesions), organ: '', equivocal: false });
      render();
    });
    nl.append(add);
    out.push(t, n, nl);
    return out;
  }

  // ---- measurements ------------------------------------------------------------------------

  /** The lesions a measurement can be attached to, as [value, label]. */
  function slots() {
    if (baseline) {
      return [
        ...state.targets.map((l) => [`t:${l.id}`, `${l.id} target ${l.organ || ''}`]),
        ...state.non_targets.map((l) => [`n:${l.id}`, `${l.id} non-target ${l.organ || ''}`]),
        ['new-target', 'a new target lesion'],
        ['new-non-target', 'a new non-target lesion'],
      ];
    }
    return [
      ...Object.keys(state.targets).map((id) => [`t:${id}`, `${id} target`]),
      ...Object.keys(state.non_targets).map((id) => [`n:${id}`, `${id} non-target`]),
      ...state.new_lesions.map((l) => [`nl:${l.id}`, `${l.id} new lesion`]),
      ['new-lesion', 'a new lesion'],
    ];
  }

  function diameterFor(m, isNode) {
    const v = isNode && m.shortMm ? m.shortMm : m.longMm;
    return tenth(v);
  }

  /** Where measurement `m` lands: the lesion record it fills. */
  function attach(m, slot) {
    let l;
    if (slot === 'new-target') {
      l = { id: nextId('T', state.targets), organ: '', is_node: false };
      state.targets.push(l);
    } else if (slot === 'new-non-target') {
      l = { id: nextId('NT', state.non_targets), organ: '', is_node: false };
      state.non_targets.push(l);
    } else if (slot === 'new-lesion') {
      l = { id: nextId('N', state.new_lesions), organ: '', equivocal: false };
      state.new_lesions.push(l);
    } else {
      const [kind, id] = slot.split(':');
      if (baseline) l = (kind === 't' ? state.targets : state.non_targets).find((x) => x.id === id);
      else if (kind === 't') l = state.targets[id];
      else if (kind === 'n') l = state.non_targets[id];
      else l = state.new_lesions.find((x) => x.id === id);
    }
    if (!l) return null;
    l.mUid = m.uid;
    l.image = m.image;
    const isTargetSlot = slot === 'new-target' || slot.startsWith('t:');
    const node = baseline ? !!l.is_node : !!(baseLesion(slot.split(':')[1])?.is_node || l.is_node);
    if (baseline && isTargetSlot) l.diameter_mm = diameterFor(m, node);
    if (!baseline && slot.startsWith('t:')) {
      l.mode = 'measured';
      l.value = diameterFor(m, node);
    }
    if (!baseline && (slot === 'new-lesion' || slot.startsWith('nl:'))) l.diameter_mm = diameterFor(m, !!l.is_node);
    m.attachedTo = slot.startsWith('new') ? null : slot;
    render();
    const name = l.id;
    say($('#form-status'), `Measurement M${m.n} attached to ${name}${l.diameter_mm ?? l.value ? `: ${fmtMm(l.diameter_mm ?? l.value)}` : ''}`);
    return name;
  }

  function allLesions() {
    return baseline ? [...state.targets, ...state.non_targets] : [...Object.values(state.targets), ...Object.values(state.non_targets), ...state.new_lesions];
  }

  function refreshFromMeasure(l) {
    const m = measures.find((x) => x.uid === l.mUid);
    if (m && state.targets.includes?.(l)) {
      l.diameter_mm = diameterFor(m, !!l.is_node);
      render();
    }
  }

  function renderMeasurements() {
    const items = measures.map((m) => {
      const sizes = m.kind === 'bidirectional' ? `${fmtMm(m.longMm)} × ${fmtMm(m.shortMm)}` : fmtMm(m.longMm);
      const attachedTo = allLesions().find((l) => l.mUid === m.uid);
      const sel = el('select', { id: `m${m.n}-slot`, disabled: submitted }, slots().map(([v, label]) => el('option', { value: v }, [label])));
      const btn = el('button', { type: 'button', id: `m${m.n}-attach`, disabled: submitted }, ['Attach']);
      btn.addEventListener('click', () => attach(m, sel.value));
      const go = el('button', { type: 'button', class: 'linklike' }, ['Show']);
      go.addEventListener('click', () => opts.goTo(m.image));
      return el('li', { id: `m${m.n}` }, [
        el('span', {}, [`M${m.n} ${m.kind}: ${sizes}, ${m.paneLabel} slice ${m.slice}`]),
        ' ',
        go,
        attachedTo ? el('span', { class: 'attached' }, [` ✓ attached to ${attachedTo.id}`]) : '',
        el('div', { class: 'attach' }, [el('label', { for: `m${m.n}-slot` }, [`Attach M${m.n} to`]), sel, btn]),
      ]);
    });
    mHost.replaceChildren(...(items.length ? items : [el('li', { class: 'muted' }, ['Draw with Length (L) or Bidirectional (B) on the images.'])]));
  }

  // ---- draft, evaluate, sign --------------------------------------------------------------

  const problem = $('#form-problem');
  const status = $('#form-status');

  function showProblem(e) {
    problem.hidden = false;
    problem.textContent = `${e.message}${e.field ? ` (${e.field})` : ''}`;
    problem.focus();
  }

  function clearProblem() {
    problem.hidden = true;
    problem.textContent = '';
  }

  function describeResult(r) {
    if (!r) return [el('p', {}, ['No result.'])];
    const rows = [];
    const add = (k, v) => v !== undefined && v !== null && rows.push(el('dt', {}, [k]), el('dd', {}, [String(v)]));
    const resp = (x) => (x ? `${x} (${RESPONSES[x] || x})` : x);
    add('Overall response', resp(r.overall));
    add('Target response', resp(r.target_response));
    add('Non-target response', resp(r.non_target_response));
    add('New lesions', r.new_lesions === undefined ? undefined : r.new_lesions ? 'yes' : 'no');
    add('Sum of diameters', r.sum_mm ?? undefined);
    add('Baseline sum of diameters', r.baseline_sum_mm);
    add('Change from baseline (%)', r.pct_change_from_baseline);
    add('Change from nadir (%)', r.pct_change_from_nadir);
    add('Not evaluable because', r.ne_reason);
    return [el('dl', { class: 'result', id: 'computed-result' }, rows)];
  }

  const saveBtn = $('#save-draft');
  const submitBtn = $('#submit-read');
  const dialog = $('#sign-dialog');
  const signForm = $('#sign-form');

  saveBtn?.addEventListener('click', async () => {
    clearProblem();
    try {
      await opts.save(collect());
      say(status, `Draft saved at ${new Date().toISOString().slice(11, 16)} UTC`);
    } catch (e) {
      showProblem(e);
    }
  });

  submitBtn?.addEventListener('click', async () => {
    clearProblem();
    const assessment = collect();
    let result;
    try {
      result = await opts.evaluate(assessment);
    } catch (e) {
      showProblem(e);
      return;
    }
    $('#sign-result').replaceChildren(...describeResult(result));
    $('#sign-problem').hidden = true;
    $('#sign-password').value = '';
    dialog.dataset.assessment = JSON.stringify(assessment);
    dialog.showModal();
    ($('#sign-username') && !$('#sign-username').closest('[hidden]') ? $('#sign-username') : $('#sign-password')).focus();
  });

  $('#sign-cancel')?.addEventListener('click', () => dialog.close());
  signForm?.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const p = $('#sign-problem');
    p.hidden = true;
    const username = $('#sign-username')?.value || '';
    try {
      const done = await opts.submit(JSON.parse(dialog.dataset.assessment), username, $('#sign-password').value);
      dialog.close();
      lock(done);
    } catch (e) {
      p.hidden = false;
      p.textContent = e.message;
      (e.field === 'username' ? $('#sign-username') : $('#sign-password'))?.focus();
    }
  });

  function lock(done) {
    const v = done.versions?.[done.versions.length - 1];
    for (const c of host.querySelectorAll('input, select, button:not(.linklike):not([id^="goto-"])')) c.disabled = true;
    saveBtn.disabled = true;
    submitBtn.disabled = true;
    const box = $('#signed');
    box.hidden = false;
    box.replaceChildren(el('h3', {}, ['Signed and locked']), el('p', {}, [`Version ${v?.version ?? ''}: read completed.`]), ...describeResult(v?.result));
    root().dataset.submitted = 'true';
    box.focus();
  }

  const root = () => document.getElementById('workstation');

  render();
  if (submitted) lock(task);

  return {
    collect,
    addMeasurement(m) {
      const existing = measures.find((x) => x.uid === m.uid);
      if (existing) {
        Object.assign(existing, m, { n: existing.n });
        for (const l of allLesions().filter((x) => x.mUid === m.uid)) {
          l.image = m.image;
          if (baseline && state.targets.includes(l)) l.diameter_mm = diameterFor(m, !!l.is_node);
          if (!baseline && l.mode === 'measured') l.value = diameterFor(m, !!baseLesion(l.id)?.is_node);
          if (!baseline && state.new_lesions.includes(l)) l.diameter_mm = diameterFor(m, !!l.is_node);
        }
        render();
        return;
      }
      counter += 1;
      measures.push({ ...m, n: counter });
      renderMeasurements();
      say(status, `Measurement M${counter}: ${fmtMm(m.longMm)}${m.shortMm ? ` × ${fmtMm(m.shortMm)}` : ''}. Attach it to a lesion in the list.`);
    },
    removeMeasurement(uid) {
      const i = measures.findIndex((x) => x.uid === uid);
      if (i >= 0) measures.splice(i, 1);
      renderMeasurements();
    },
    setSliceThickness(mm) {
      if (baseline && !state.slice_thickness_mm && Number.isFinite(mm) && mm > 0) {
        state.slice_thickness_mm = tenth(mm);
        const i = document.getElementById('slice-thickness');
        if (i) i.value = String(state.slice_thickness_mm);
      }
    },
  };
}
