/**
 * A histogram with one label, and the counter of its observations, for hot
 * paths: observing one value is a Map lookup, a bucket search and three
 * additions. The Counter and Histogram of ./exposition.ts key and validate
 * a label object on every call; here the exposition values are built only
 * when the registry is scraped.
 *
 * Rules: the exposition (names, help, types, label names and order, `le`
 * values, cumulative bucket counts, sums, counts, series order) is exactly
 * what a `Histogram` (./exposition.ts, or prom-client's) with these buckets
 * and a `Counter` incremented by 1 at each observation would give. A value lands in the
 * first bucket whose upper bound is `>=` it; above the last bound it is
 * counted in `+Inf` only.
 *
 * @module
 */

import type { Registry } from "./exposition.ts";

/** The observations of one label value. */
interface Series {
  readonly labelValue: string;
  count: number;
  sum: number;
  /** Observations per bucket, not cumulative; one per upper bound. */
  readonly buckets: Float64Array;
}

/** One exposition sample, shaped as prom-client's own `get()` values. */
interface Sample {
  value: number;
  metricName?: string;
  exemplar?: null;
  labels: Record<string, string | number>;
}

/** What prom-client's Registry reads from a metric (its `get()` and `reset()`). */
interface CollectedMetric {
  name: string;
  help: string;
  type: "counter" | "histogram";
  aggregator: "sum";
  get(): Promise<{
    name: string;
    help: string;
    type: "counter" | "histogram";
    values: Sample[];
    aggregator: "sum";
  }>;
  reset(): void;
}

/** Names and help of the two families a {@link LabeledHistogram} exposes. */
export interface LabeledHistogramOptions {
  /** The label's name (e.g. `operation`). */
  labelName: string;
  /** Ascending upper bounds, without `+Inf`. */
  buckets: readonly number[];
  /** The histogram family. */
  histogram: { name: string; help: string };
  /** The counter family: observations per label value. */
  counter: { name: string; help: string };
}

/**
 * Per label value: count, sum and bucket counts of observed values,
 * exposed as a histogram family and a counter family.
 */
export class LabeledHistogram {
  readonly #labelName: string;
  readonly #bounds: Float64Array;
  readonly #series = new Map<string, Series>();
  readonly #options: LabeledHistogramOptions;

  constructor(options: LabeledHistogramOptions) {
    this.#options = options;
    this.#labelName = options.labelName;
    this.#bounds = Float64Array.from(options.buckets);
  }

  /**
   * One observation of `value` for `labelValue`. Throws a TypeError (and
   * records nothing) when `value` is not a finite number, as prom-client's
   * Histogram does.
   */
  observe(labelValue: string, value: number): void {
    if (!Number.isFinite(value)) {
      throw new TypeError(`Value is not a valid number: ${value}`);
    }
    let series = this.#series.get(labelValue);
    if (series === undefined) {
      series = { labelValue, count: 0, sum: 0, buckets: new Float64Array(this.#bounds.length) };
      this.#series.set(labelValue, series);
    }
    series.count++;
    series.sum += value;
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]) {
        series.buckets[i]++;
        return;
      }
    }
  }

  /** Registers the counter family in `registry` (at this point of its order). */
  registerCounter(registry: Registry): void {
    const { name, help } = this.#options.counter;
    this.#register(registry, name, help, "counter", () => this.#counterSamples());
  }

  /** Registers the histogram family in `registry` (at this point of its order). */
  registerHistogram(registry: Registry): void {
    const { name, help } = this.#options.histogram;
    this.#register(registry, name, help, "histogram", () => this.#histogramSamples(name));
  }

  #register(
    registry: Registry,
    name: string,
    help: string,
    type: "counter" | "histogram",
    samples: () => Sample[],
  ): void {
    const metric: CollectedMetric = {
      name,
      help,
      type,
      aggregator: "sum",
      get: () => Promise.resolve({ name, help, type, values: samples(), aggregator: "sum" }),
      reset: () => this.#series.clear(),
    };
    registry.registerMetric(metric);
  }

  #counterSamples(): Sample[] {
    const values: Sample[] = [];
    for (const s of this.#series.values()) {
      values.push({ value: s.count, labels: { [this.#labelName]: s.labelValue } });
    }
    return values;
  }

  #histogramSamples(name: string): Sample[] {
    const bucket = `${name}_bucket`;
    const values: Sample[] = [];
    for (const s of this.#series.values()) {
      const label = this.#labelName;
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += s.buckets[i];
        values.push({
          value: cumulative,
          metricName: bucket,
          exemplar: null,
          labels: { le: this.#bounds[i], [label]: s.labelValue },
        });
      }
      values.push(
        {
          value: s.count,
          metricName: bucket,
          exemplar: null,
          labels: { le: "+Inf", [label]: s.labelValue },
        },
        { value: s.sum, metricName: `${name}_sum`, labels: { [label]: s.labelValue } },
        { value: s.count, metricName: `${name}_count`, labels: { [label]: s.labelValue } },
      );
    }
    return values;
  }
}
