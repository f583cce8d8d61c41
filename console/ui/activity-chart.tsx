import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { AuditSummary } from './types';

/**
 * SVIDs issued and requests denied per minute (this server's audit summary),
 * drawn with uPlot: a small (~50 kB), dependency-free time-series chart on a
 * canvas, fast enough to redraw on every audit event.
 */
export function ActivityChart({ summary }: { summary: AuditSummary }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = (): uPlot.AlignedData => [summary.buckets.map((b) => b.start), summary.buckets.map((b) => b.issued), summary.buckets.map((b) => b.denied)];
  useEffect(() => {
    const width = () => Math.max(280, (el.current?.clientWidth ?? 600) - 8);
    plot.current = new uPlot(
      {
        width: width(),
        height: 220,
        series: [{}, { label: 'SVIDs issued', stroke: '#2563eb', width: 2 }, { label: 'denied', stroke: '#dc2626', width: 2 }],
        axes: [{}, { label: 'per minute' }],
        scales: { x: { time: true } },
      },
      data(),
      el.current!,
    );
    const resize = () => plot.current?.setSize({ width: width(), height: 220 });
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      plot.current?.destroy();
    };
  }, []);
  useEffect(() => {
    plot.current?.setData(data());
  }, [summary]);
  return (
    <figure class="chart">
      <div ref={el} role="img" aria-label={`SVIDs issued and denials per minute; last ${summary.buckets.length} minutes: ${summary.issued} issued, ${summary.denied} denied`} />
    </figure>
  );
}
