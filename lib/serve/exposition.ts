/**
 * Prometheus metrics in the text exposition format (version 0.0.4): a
 * registry and labelled counters, gauges and histograms, written in the
 * agent's own code so that the run command loads no npm package for them
 * (an npm package brings Deno's Node compatibility and npm loading, resident
 * for the process's lifetime).
 *
 * Rules: the text is what prom-client 15's `Registry.metrics()` writes for
 * the same registrations and updates (tests/serve/exposition_test.ts
 * compares them): families in registration order, separated by a blank
 * line; `# HELP` and `# TYPE` lines with `\` and newlines escaped; a
 * family's series in the order their label sets first appeared, each label
 * set written in the key order it was first given (a gauge's: last set), label values escaped
 * (`\`, newline, `"`); numbers as JavaScript prints them, NaN as `Nan` and
 * infinities as `+Inf`/`-Inf`. A metric without labels has its one series
 * from the start (0; a histogram with every bucket 0); a labelled one has
 * none until its first update. Histogram buckets are written `le` first,
 * cumulative, then `+Inf`, `_sum` and `_count`. A label name that is not
 * the metric's, a counter decreased or a value that is not a finite number
 * (for a gauge: not a number) throws, and nothing is recorded.
 *
 * @module
 */

/** Label values by label name. */
export type Labels<L extends string = string> = Partial<Record<L, string | number>>;

/** One line of a family: `metricName{labels} value`. */
export interface Sample {
  /** The value. */
  value: number;
  /** The sample's name when it is not the family's (`_bucket`, `_sum`, `_count`). */
  metricName?: string;
  /** Its labels, written in this key order. */
  labels: Record<string, string | number>;
}

/** A family as the registry reads it when it writes the text. */
export interface Collected {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  values: Sample[];
}

/** What a {@link Registry} holds: anything that can give its family. */
export interface Collectable {
  /** The family's name (unique in a registry). */
  readonly name: string;
  /** The family now. */
  get(): Collected | Promise<Collected>;
}

/** Metric families, written out in their registration order. */
export class Registry {
  readonly #metrics = new Map<string, Collectable>();

  /** The content type of {@link metrics}. */
  readonly contentType = "text/plain; version=0.0.4; charset=utf-8";

  /** Adds `metric`; another metric of the same name is an error. */
  registerMetric(metric: Collectable): void {
    const held = this.#metrics.get(metric.name);
    if (held !== undefined && held !== metric) {
      throw new Error(`A metric with the name ${metric.name} has already been registered.`);
    }
    this.#metrics.set(metric.name, metric);
  }

  /** The text exposition of every family. */
  async metrics(): Promise<string> {
    const families: string[] = [];
    for (const metric of this.#metrics.values()) families.push(familyText(await metric.get()));
    return `${families.join("\n\n")}\n`;
  }
}

function escapeText(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function labelValueText(v: string | number): string {
  return typeof v === "string" ? escapeText(v).replace(/"/g, '\\"') : String(v);
}

function valueText(v: number): string {
  if (Number.isNaN(v)) return "Nan";
  if (!Number.isFinite(v)) return v < 0 ? "-Inf" : "+Inf";
  return String(v);
}

function familyText(family: Collected): string {
  const name = escapeText(family.name);
  const lines = [`# HELP ${name} ${escapeText(family.help)}`, `# TYPE ${name} ${family.type}`];
  for (const sample of family.values) {
    const labels = Object.entries(sample.labels).map(([k, v]) => `${k}="${labelValueText(v)}"`);
    const labelText = labels.length > 0 ? `{${labels.join(",")}}` : "";
    lines.push(`${sample.metricName ?? name}${labelText} ${valueText(sample.value)}`);
  }
  return lines.join("\n");
}

/** Options of a {@link Counter}, {@link Gauge} or {@link Histogram}. */
export interface MetricOptions<L extends string> {
  /** The family's name. */
  name: string;
  /** Its help text. */
  help: string;
  /** The label names its series may have. */
  labelNames?: readonly L[];
  /** Registries it is added to. */
  registers?: Registry[];
}

/** A series: its labels as first given and its state. */
interface Series<T> {
  labels: Record<string, string | number>;
  state: T;
}

/** What the three kinds share: the series by label set. */
abstract class Metric<L extends string, T> implements Collectable {
  readonly name: string;
  readonly help: string;
  readonly #labelNames: ReadonlySet<string>;
  readonly #sortedNames: readonly string[];
  protected readonly series = new Map<string, Series<T>>();

  constructor(options: MetricOptions<L>) {
    this.name = options.name;
    this.help = options.help;
    const names = options.labelNames ?? [];
    this.#labelNames = new Set(names);
    this.#sortedNames = [...names].sort();
    for (const r of options.registers ?? []) r.registerMetric(this);
  }

  /** The state of a new series. */
  protected abstract initial(): T;

  /** The family now. */
  abstract get(): Collected | Promise<Collected>;

  /** Every series; a metric without labels has its one series from the start. */
  protected all(): Iterable<Series<T>> {
    if (this.#labelNames.size === 0 && this.series.size === 0) this.seriesOf({});
    return this.series.values();
  }

  /** The series of `labels`, made when new; throws for a label name not declared. */
  protected seriesOf(labels: Labels<L>): Series<T> {
    for (const name of Object.keys(labels)) {
      if (!this.#labelNames.has(name)) {
        throw new Error(
          `Added label "${name}" is not included in initial labelset: ${
            JSON.stringify([...this.#labelNames])
          }`,
        );
      }
    }
    let key = "";
    for (const name of this.#sortedNames) {
      const v = (labels as Record<string, string | number | undefined>)[name];
      if (v !== undefined) key += `${name}:${v},`;
    }
    let series = this.series.get(key);
    if (series === undefined) {
      series = { labels: { ...labels } as Record<string, string | number>, state: this.initial() };
      this.series.set(key, series);
    }
    return series;
  }
}

/** Labels and value of `inc`/`set`/`observe`, called `(value)` or `(labels, value)`. */
function split<L extends string>(
  labelsOrValue: Labels<L> | number | undefined,
  value: number | undefined,
): [Labels<L>, number | undefined] {
  return typeof labelsOrValue === "object" ? [labelsOrValue, value] : [{}, labelsOrValue];
}

/** A counter: per label set, a sum of increments. */
export class Counter<L extends string = string> extends Metric<L, { value: number }> {
  protected initial(): { value: number } {
    return { value: 0 };
  }

  /** Adds `value` (default 1; negative or not finite throws) to the series of `labels`. */
  inc(labels?: Labels<L> | number, value?: number): void {
    const [l, v] = split(labels, value);
    if (v !== undefined && !Number.isFinite(v)) {
      throw new TypeError(`Value is not a valid number: ${v}`);
    }
    if (v !== undefined && v < 0) throw new Error("It is not possible to decrease a counter");
    this.seriesOf(l).state.value += v ?? 1;
  }

  get(): Collected {
    const values = [...this.all()].map((s) => ({
      value: s.state.value,
      labels: s.labels,
    }));
    return { name: this.name, help: this.help, type: "counter", values };
  }
}

/** Options of a {@link Gauge}. */
export interface GaugeOptions<L extends string> extends MetricOptions<L> {
  /** Called before each collection, with the gauge as `this` (e.g. to `set` it). */
  collect?: (this: Gauge<L>) => void;
}

/** A gauge: per label set, the last value set. */
export class Gauge<L extends string = string> extends Metric<L, { value: number }> {
  readonly #collect?: (this: Gauge<L>) => void;

  constructor(options: GaugeOptions<L>) {
    super(options);
    this.#collect = options.collect;
  }

  protected initial(): { value: number } {
    return { value: 0 };
  }

  /** Sets the series of `labels` to `value`, or the series without labels: `set(value)`. */
  set(labels: Labels<L> | number, value?: number): void {
    const [l, v] = split(labels, value);
    if (typeof v !== "number") throw new TypeError(`Value is not a valid number: ${v}`);
    const series = this.seriesOf(l);
    series.state.value = v;
    // As prom-client: a series keeps its place, and its labels are the last ones given.
    series.labels = { ...l } as Record<string, string | number>;
  }

  get(): Collected {
    this.#collect?.call(this);
    const values = [...this.all()].map((s) => ({
      value: s.state.value,
      labels: s.labels,
    }));
    return { name: this.name, help: this.help, type: "gauge", values };
  }
}

/** Options of a {@link Histogram}. */
export interface HistogramOptions<L extends string> extends MetricOptions<L> {
  /** Ascending upper bounds, without `+Inf`. */
  buckets: readonly number[];
}

interface HistogramState {
  count: number;
  sum: number;
  /** Observations per bucket, not cumulative. */
  buckets: Float64Array;
}

/** A histogram: per label set, observations counted in buckets, their sum and count. */
export class Histogram<L extends string = string> extends Metric<L, HistogramState> {
  readonly #bounds: Float64Array;

  constructor(options: HistogramOptions<L>) {
    super(options);
    if (options.labelNames?.includes("le" as L)) throw new Error("le is a reserved label keyword");
    this.#bounds = Float64Array.from(options.buckets);
  }

  protected initial(): HistogramState {
    return { count: 0, sum: 0, buckets: new Float64Array(this.#bounds.length) };
  }

  /**
   * Observes `value` for the series of `labels`, or the series without
   * labels: `observe(value)`. A value lands in the first bucket whose upper
   * bound is `>=` it; above the last, in `+Inf` only.
   */
  observe(labels: Labels<L> | number, value?: number): void {
    const [l, v] = split(labels, value);
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new TypeError(`Value is not a valid number: ${v}`);
    }
    const state = this.seriesOf(l).state;
    state.sum += v;
    state.count++;
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (v <= bounds[i]) {
        state.buckets[i]++;
        return;
      }
    }
  }

  get(): Collected {
    const bucket = `${this.name}_bucket`;
    const values: Sample[] = [];
    for (const { labels, state } of this.all()) {
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += state.buckets[i];
        values.push({
          value: cumulative,
          metricName: bucket,
          labels: { le: this.#bounds[i], ...labels },
        });
      }
      values.push(
        { value: state.count, metricName: bucket, labels: { le: "+Inf", ...labels } },
        { value: state.sum, metricName: `${this.name}_sum`, labels },
        { value: state.count, metricName: `${this.name}_count`, labels },
      );
    }
    return { name: this.name, help: this.help, type: "histogram", values };
  }
}
