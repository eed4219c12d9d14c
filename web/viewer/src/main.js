// corelab's reader workstation: Cornerstone3D stack viewports over corelab's DICOMweb read side
// (the reader's blinded scope), and the RECIST read form beside the images. The page shell is
// rendered by corelab after it checked the task (GET /read-tasks/{task}/workstation); everything
// here goes through the same API a script would use, so the server decides every access.
import './workstation.css';
import {
  Enums,
  RenderingEngine,
  eventTarget,
  imageLoader,
  init as coreInit,
  utilities,
} from '@cornerstonejs/core';
import {
  BidirectionalTool,
  Enums as ToolEnums,
  LengthTool,
  PanTool,
  StackScrollTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
  addTool,
  init as toolsInit,
} from '@cornerstonejs/tools';
import dicomImageLoader from '@cornerstonejs/dicom-image-loader';
import { createForm } from './form.js';
import { $, api, el, say } from './util.js';

// Window/level presets for CT (width, centre in HU).
export const PRESETS = [
  { key: '1', id: 'soft', label: 'Soft tissue', width: 400, center: 40 },
  { key: '2', id: 'lung', label: 'Lung', width: 1500, center: -600 },
  { key: '3', id: 'bone', label: 'Bone', width: 1800, center: 400 },
  { key: '4', id: 'liver', label: 'Liver', width: 150, center: 30 },
];

const TOOLS = [
  { key: 'w', name: WindowLevelTool.toolName, label: 'Window/level' },
  { key: 'p', name: PanTool.toolName, label: 'Pan' },
  { key: 'z', name: ZoomTool.toolName, label: 'Zoom' },
  { key: 'l', name: LengthTool.toolName, label: 'Length' },
  { key: 'b', name: BidirectionalTool.toolName, label: 'Bidirectional' },
];

const ENGINE = 'corelab-workstation';
const root = document.getElementById('workstation');
const TASK = root?.dataset.task;
const USERNAME = root?.dataset.username || '';
// Timings for docs/performance.md and the browser test: ms since navigation started.
const timing = { firstImageMs: null, seriesLoadedMs: null, slices: 0, loaded: 0 };
window.corelabWorkstation = timing;

/** A viewport slot: the current timepoint, or the prior it is compared with. */
class Pane {
  constructor(id, element, label, statusEl) {
    this.id = id;
    this.element = element;
    this.label = label;
    this.statusEl = statusEl;
    this.imageIds = [];
    this.sops = []; // SOP Instance UID per index
    this.index = 0;
  }
  viewport() {
    return engine.getViewport(this.id);
  }
  current() {
    return this.viewport()?.getCurrentImageIdIndex?.() ?? this.index;
  }
  async jump(i) {
    const n = this.imageIds.length;
    if (!n) return;
    const target = Math.max(0, Math.min(n - 1, i));
    await utilities.jumpToSlice(this.element, { imageIndex: target });
  }
  describe() {
    const n = this.imageIds.length;
    const i = this.current();
    this.element.dataset.slice = String(i + 1);
    this.element.dataset.slices = String(n);
    this.statusEl.textContent = n ? `${this.label}: slice ${i + 1} of ${n}` : `${this.label}: no images`;
    this.element.setAttribute(
      'aria-label',
      `${this.label} images, slice ${i + 1} of ${n}. Arrow keys or the mouse wheel scroll.`,
    );
  }
}

let engine;
let panes = {};
let toolGroup;
let linked = true;
let linkOffset = 0;
let syncing = false;
let form;
let trialId;
let currentTask;

async function main() {
  if (!root || !TASK) return;
  const task = await api('GET', `/api/v1/read-tasks/${TASK}`);
  currentTask = task;
  trialId = task.trial_id;
  await startCornerstone();
  buildToolbar();
  panes.current = new Pane('current', $('#vp-current'), `${task.timepoint} (this read)`, $('#status-current'));
  panes.prior = new Pane('prior', $('#vp-prior'), 'Prior', $('#status-prior'));
  engine = new RenderingEngine(ENGINE);
  engine.setViewports([
    { viewportId: 'current', type: Enums.ViewportType.STACK, element: panes.current.element },
    { viewportId: 'prior', type: Enums.ViewportType.STACK, element: panes.prior.element },
  ]);
  toolGroup.addViewport('current', ENGINE);
  toolGroup.addViewport('prior', ENGINE);
  for (const p of Object.values(panes)) wirePane(p);

  form = createForm({
    task,
    host: $('#read-form'),
    measurements: $('#measurements'),
    goTo: goToImage,
    evaluate: (assessment) => api('POST', `/api/v1/read-tasks/${TASK}/evaluate`, { assessment }),
    save: (assessment) => api('POST', `/api/v1/read-tasks/${TASK}/draft`, { assessment }),
    submit: (assessment, username, password) =>
      api('POST', `/api/v1/read-tasks/${TASK}/submit`, { assessment, username: username || undefined, password }),
    username: USERNAME,
    describeImage: describeImage,
  });
  eventTarget.addEventListener(ToolEnums.Events.ANNOTATION_COMPLETED, (e) => onMeasurement(e.detail.annotation));
  eventTarget.addEventListener(ToolEnums.Events.ANNOTATION_MODIFIED, (e) => onMeasurement(e.detail.annotation));
  eventTarget.addEventListener(ToolEnums.Events.ANNOTATION_REMOVED, (e) =>
    form.removeMeasurement(e.detail.annotation?.annotationUID),
  );

  // The series to read: the timepoint's series with the most images; a choice when several.
  const series = allSeries(task.images);
  fillSeriesChoice($('#series-current'), series, (s) => loadPane(panes.current, s, true));
  const priors = (task.earlier || []).flatMap((tp) =>
    allSeries(tp.images).map((s) => ({ ...s, label: `${tp.timepoint}${tp.kind === 'baseline' ? ' (baseline)' : ''}` })),
  );
  if (priors.length) {
    // The baseline first, then the other earlier timepoints.
    priors.sort((a, b) => (a.label.includes('(baseline)') ? -1 : 0) - (b.label.includes('(baseline)') ? -1 : 0));
    fillSeriesChoice($('#series-prior'), priors, (s) => loadPane(panes.prior, s, false));
  } else {
    $('#pane-prior').hidden = true;
    $('#link-row').hidden = true;
    root.classList.add('single');
    engine.resize(true, true);
  }
  if (!series.length) {
    say($('#load-status'), 'This timepoint has no images to read.');
    return;
  }
  await loadPane(panes.current, series[0], true);
  if (priors.length) await loadPane(panes.prior, priors[0], false);
}

function allSeries(studies) {
  const out = [];
  for (const st of studies || []) {
    for (const se of st.series) out.push({ study: st.study_instance_uid, ...se });
  }
  return out.sort((a, b) => b.instance_count - a.instance_count);
}

function fillSeriesChoice(select, list, onChoose) {
  select.replaceChildren(
    ...list.map((s, i) =>
      el('option', { value: String(i) }, [
        `${s.label ? s.label + ': ' : ''}${s.modality} series ${s.series_number ?? ''} ${s.series_description ?? ''} (${s.instance_count} images)`,
      ]),
    ),
  );
  select.addEventListener('change', () => onChoose(list[Number(select.value)]));
}

async function startCornerstone() {
  await coreInit();
  toolsInit();
  dicomImageLoader.init({
    maxWebWorkers: Math.max(1, Math.min(4, (navigator.hardwareConcurrency || 2) - 1)),
    // A browser session names the trial on every DICOMweb read (docs/dicomweb.md).
    open(xhr, url) {
      xhr.open('get', `${url}${url.includes('?') ? '&' : '?'}trial=${encodeURIComponent(trialId)}`, true);
    },
  });
  for (const t of [WindowLevelTool, PanTool, ZoomTool, StackScrollTool, LengthTool, BidirectionalTool]) addTool(t);
  toolGroup = ToolGroupManager.createToolGroup('corelab-reader');
  for (const t of TOOLS) toolGroup.addTool(t.name);
  toolGroup.addTool(StackScrollTool.toolName);
  toolGroup.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Wheel }] });
  toolGroup.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Auxiliary }] });
  toolGroup.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Secondary }] });
  toolGroup.setToolActive(WindowLevelTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Primary }] });
  // Passive, not disabled: their measurements are drawn (and can be adjusted) whatever tool is active.
  toolGroup.setToolPassive(LengthTool.toolName);
  toolGroup.setToolPassive(BidirectionalTool.toolName);
}

let activeTool = WindowLevelTool.toolName;
function selectTool(name) {
  const keep = { [PanTool.toolName]: ToolEnums.MouseBindings.Auxiliary, [ZoomTool.toolName]: ToolEnums.MouseBindings.Secondary };
  const prev = activeTool;
  if (keep[prev]) {
    toolGroup.setToolActive(prev, { bindings: [{ mouseButton: keep[prev] }] });
  } else {
    toolGroup.setToolPassive(prev);
  }
  const bindings = [{ mouseButton: ToolEnums.MouseBindings.Primary }];
  if (keep[name]) bindings.push({ mouseButton: keep[name] });
  toolGroup.setToolActive(name, { bindings });
  activeTool = name;
  for (const b of document.querySelectorAll('[data-tool]')) {
    b.setAttribute('aria-pressed', String(b.dataset.tool === name));
  }
  say($('#tool-status'), `Left mouse button: ${TOOLS.find((t) => t.name === name)?.label}`);
}

function applyPreset(p) {
  for (const pane of Object.values(panes)) {
    const vp = pane.viewport();
    if (!vp || !pane.imageIds.length) continue;
    vp.setProperties({ voiRange: utilities.windowLevel.toLowHighRange(p.width, p.center) });
    vp.render();
  }
  say($('#tool-status'), `Window ${p.label}: width ${p.width}, level ${p.center}`);
}

function buildToolbar() {
  const tools = $('#tools');
  for (const t of TOOLS) {
    const b = el('button', { type: 'button', id: `tool-${t.label.toLowerCase().replace(/\W+/g, '-')}`, 'data-tool': t.name, 'aria-pressed': 'false', 'aria-keyshortcuts': t.key.toUpperCase() }, [
      `${t.label} `,
      el('kbd', {}, [t.key.toUpperCase()]),
    ]);
    b.addEventListener('click', () => selectTool(t.name));
    tools.append(b);
  }
  const presets = $('#presets');
  for (const p of PRESETS) {
    const b = el('button', { type: 'button', 'data-preset': p.id, 'aria-keyshortcuts': p.key }, [`${p.label} `, el('kbd', {}, [p.key])]);
    b.addEventListener('click', () => applyPreset(p));
    presets.append(b);
  }
  const reset = el('button', { type: 'button', 'aria-keyshortcuts': 'R' }, ['Reset view ', el('kbd', {}, ['R'])]);
  reset.addEventListener('click', () => {
    for (const p of Object.values(panes)) {
      const vp = p.viewport();
      if (vp && p.imageIds.length) {
        vp.resetCamera();
        vp.resetProperties();
        vp.render();
      }
    }
  });
  presets.append(reset);
  const link = $('#link');
  link.addEventListener('change', () => {
    linked = link.checked;
    linkOffset = panes.prior.current() - panes.current.current();
    say($('#tool-status'), linked ? 'Scrolling is linked' : 'Scrolling is not linked');
  });
  selectTool(WindowLevelTool.toolName);
  document.addEventListener('keydown', onKey);
}

function onKey(e) {
  const t = e.target;
  if (t instanceof HTMLElement && t.closest('input, select, textarea, dialog')) return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const pane = Object.values(panes).find((p) => p.element === t) || panes.current;
  const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1, PageDown: 10, PageUp: -10 }[e.key];
  if (step !== undefined && t instanceof HTMLElement && t.classList.contains('viewport')) {
    e.preventDefault();
    pane.jump(pane.current() + step);
    return;
  }
  if ((e.key === 'Home' || e.key === 'End') && t instanceof HTMLElement && t.classList.contains('viewport')) {
    e.preventDefault();
    pane.jump(e.key === 'Home' ? 0 : pane.imageIds.length - 1);
    return;
  }
  const key = e.key.toLowerCase();
  const tool = TOOLS.find((x) => x.key === key);
  if (tool) return selectTool(tool.name);
  const preset = PRESETS.find((x) => x.key === key);
  if (preset) return applyPreset(preset);
  if (key === 'r') $('#presets button:last-child').click();
}

function wirePane(p) {
  p.element.addEventListener(Enums.Events.STACK_NEW_IMAGE, (e) => {
    p.index = e.detail.imageIdIndex;
    p.describe();
    if (!linked || syncing) return;
    const other = p === panes.current ? panes.prior : panes.current;
    if (!other.imageIds.length) return;
    const offset = p === panes.current ? linkOffset : -linkOffset;
    syncing = true;
    other.jump(p.index + offset).finally(() => {
      syncing = false;
    });
  });
  p.element.addEventListener('contextmenu', (e) => e.preventDefault());
}

/** Finds the series' instances (QIDO-RS) and their headers (WADO-RS metadata) and shows it. */
async function loadPane(pane, s, isCurrent) {
  const t0 = performance.now();
  const base = `/dicomweb/studies/${s.study}/series/${s.series_instance_uid}`;
  const q = `trial=${encodeURIComponent(trialId)}`;
  const [instances, metadata] = await Promise.all([
    api('GET', `${base}/instances?${q}`, undefined, 'application/dicom+json'),
    api('GET', `${base}/metadata?${q}`, undefined, 'application/dicom+json'),
  ]);
  const bySop = new Map((metadata || []).map((m) => [m['00080018']?.Value?.[0], m]));
  const ordered = (instances || [])
    .map((i) => i['00080018']?.Value?.[0])
    .filter((uid) => bySop.has(uid))
    .map((uid) => ({ uid, meta: bySop.get(uid) }));
  // Head to feet by position along the slice normal when the headers have it; else instance number.
  ordered.sort((a, b) => sliceKey(a.meta) - sliceKey(b.meta));
  pane.sops = ordered.map((o) => o.uid);
  pane.imageIds = ordered.map((o) => {
    const id = `wadors:${base}/instances/${o.uid}/frames/1`;
    dicomImageLoader.wadors.metaDataManager.add(id, o.meta);
    return id;
  });
  pane.series = s;
  if (!pane.imageIds.length) {
    pane.describe();
    return;
  }
  const vp = pane.viewport();
  const first = new Promise((resolve) => {
    const h = () => {
      pane.element.removeEventListener(Enums.Events.IMAGE_RENDERED, h);
      resolve();
    };
    pane.element.addEventListener(Enums.Events.IMAGE_RENDERED, h);
  });
  const start = Math.floor(pane.imageIds.length / 2);
  await vp.setStack(pane.imageIds, start);
  const ct = (s.modality || '').toUpperCase() === 'CT';
  if (ct) vp.setProperties({ voiRange: utilities.windowLevel.toLowHighRange(PRESETS[0].width, PRESETS[0].center) });
  vp.render();
  await first;
  pane.index = start;
  pane.describe();
  pane.element.dataset.ready = 'true';
  if (!isCurrent) showEarlierMeasurements(pane);
  if (isCurrent) {
    timing.firstImageMs ??= Math.round(performance.now());
    form.setSliceThickness(Number(s && sliceThickness(ordered[0]?.meta)));
  }
  prefetch(pane, isCurrent, t0);
}

function sliceKey(meta) {
  const pos = meta?.['00200032']?.Value;
  const ori = meta?.['00200037']?.Value;
  if (pos?.length === 3 && ori?.length === 6) {
    const [a, b, c, d, e, f] = ori.map(Number);
    const n = [b * f - c * e, c * d - a * f, a * e - b * d];
    return -(n[0] * pos[0] + n[1] * pos[1] + n[2] * pos[2]);
  }
  return Number(meta?.['00200013']?.Value?.[0] ?? 0);
}

function sliceThickness(meta) {
  return Number(meta?.['00180050']?.Value?.[0] ?? NaN);
}

/** Loads every image of the series into the cache while the reader works. */
function prefetch(pane, isCurrent, t0) {
  let done = 0;
  const n = pane.imageIds.length;
  const status = $('#load-status');
  if (isCurrent) {
    timing.slices = n;
    timing.loaded = 0;
  }
  const progress = () => {
    done += 1;
    if (isCurrent) timing.loaded = done;
    if (done === n) {
      if (isCurrent) {
        timing.seriesLoadedMs ??= Math.round(performance.now());
        root.dataset.seriesLoaded = 'true';
      }
      say(status, `${pane.label}: all ${n} images loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } else if (done % 10 === 0) {
      status.textContent = `${pane.label}: ${done} of ${n} images loaded`;
    }
  };
  for (const id of pane.imageIds) {
    imageLoader
      .loadAndCacheImage(id, { priority: isCurrent ? 0 : 1, requestType: Enums.RequestType.Prefetch })
      .then(progress, (err) => {
        console.warn('an image could not be loaded', id, err?.message || err);
        say(status, `${pane.label}: an image could not be loaded (${err?.status || 'decoding error'})`);
      });
  }
}

// Measurements of earlier reads redrawn on the prior pane (shown, locked, never attached again).
const earlierMarks = new Set();

/** Redraws the reader's earlier measurements that lie in the prior pane's series, labelled. */
function showEarlierMeasurements(pane) {
  let n = 0;
  for (const tp of currentTask?.earlier || []) {
    const a = tp.assessment || {};
    const lesions = [
      ...(Array.isArray(a.targets) ? a.targets : Object.entries(a.targets || {}).map(([id, r]) => ({ id, ...r }))),
      ...(Array.isArray(a.non_targets) ? a.non_targets : Object.entries(a.non_targets || {}).map(([id, r]) => ({ id, ...r }))),
      ...(a.new_lesions || []),
    ];
    for (const l of lesions) {
      const pts = l.image?.points || [];
      const i = pane.sops.indexOf(l.image?.sop_instance_uid);
      if (i < 0 || (pts.length !== 4 && pts.length !== 2)) continue;
      const imageId = pane.imageIds[i];
      const world = pts.map((p) => utilities.imageToWorldCoords(imageId, p));
      const opts = { referencedImageId: imageId };
      const ann =
        pts.length === 4
          ? BidirectionalTool.hydrate(pane.id, [[world[0], world[1]], [world[2], world[3]]], opts)
          : LengthTool.hydrate(pane.id, world, opts);
      if (!ann) continue;
      ann.data.label = `${l.id} (${tp.timepoint})`;
      ann.isLocked = true;
      earlierMarks.add(ann.annotationUID);
      n += 1;
    }
  }
  timing.earlierMarks = n;
  pane.viewport()?.render();
}

/** What a drawn measurement gives the form: diameters in mm and where on which image. */
function onMeasurement(a) {
  if (!a?.metadata || earlierMarks.has(a.annotationUID)) return;
  const tool = a.metadata.toolName;
  if (tool !== LengthTool.toolName && tool !== BidirectionalTool.toolName) return;
  const imageId = a.metadata.referencedImageId;
  const pane = Object.values(panes).find((p) => p.imageIds.includes(imageId));
  if (!pane) return;
  const stats = Object.values(a.data?.cachedStats || {})[0];
  if (!stats || !Number.isFinite(stats.length)) return;
  const index = pane.imageIds.indexOf(imageId);
  const points = (a.data.handles.points || []).map((w) => {
    const [x, y] = utilities.worldToImageCoords(imageId, w);
    return [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
  });
  form.addMeasurement({
    uid: a.annotationUID,
    kind: tool === BidirectionalTool.toolName ? 'bidirectional' : 'length',
    longMm: stats.length,
    shortMm: tool === BidirectionalTool.toolName ? stats.width : null,
    unit: stats.unit,
    onCurrent: pane === panes.current,
    paneLabel: pane.label,
    slice: index + 1,
    image: { sop_instance_uid: pane.sops[index], frame: 1, points },
  });
}

function describeImage(image) {
  for (const p of Object.values(panes)) {
    const i = p.sops.indexOf(image?.sop_instance_uid);
    if (i >= 0) return `${p === panes.current ? 'this timepoint' : p.label}, slice ${i + 1}`;
  }
  return 'an image of another series';
}

/** Shows where a lesion was measured: the pane holding that instance jumps to its slice. */
async function goToImage(image) {
  for (const p of [panes.prior, panes.current]) {
    const i = p.sops.indexOf(image?.sop_instance_uid);
    if (i >= 0) {
      const before = linked;
      await p.jump(i);
      p.element.focus();
      say($('#tool-status'), `${p.label}: slice ${i + 1}, where the lesion was measured${before ? ' (linked)' : ''}`);
      return true;
    }
  }
  say($('#tool-status'), 'That image is not in the series shown; choose its series in the prior pane.');
  return false;
}

window.addEventListener('resize', () => engine?.resize(true, true));
main().catch((e) => {
  console.error(e);
  say($('#load-status'), `The workstation could not start: ${e.message || e}. Reload the page; if it persists, tell the core lab.`);
});

