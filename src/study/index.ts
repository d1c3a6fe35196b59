// Public face of the study's pure parts: statistics, the iputils summary, the ping -f schedule,
// the RFC's figures, the preset adapter, measurement, the plan, the report's data types and the
// renderers (text, Markdown, SVG). The runner is Node-only (it starts engine runs): import it
// from './runner.js', the real-guest runner (QEMU, root) from './guest-qemu.js'.
export * from './stats.js';
export * from './iputils.js';
export * from './flood-schedule.js';
export * from './rfc-figures.js';
export * from './conclusions.js';
export * from './presets-source.js';
export * from './measure.js';
export * from './plan.js';
export * from './report.js';
export * from './guest-plan.js';
export * from './format-text.js';
export * from './markdown.js';
export * from './svg.js';
export * from './progress.js';
export * from './format-guest.js';
