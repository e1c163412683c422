// One Grafana panel, drawn by Grafana's own components (@grafana/ui's PanelChrome and TimeSeries, the uPlot
// time series that Grafana's "timeseries" panel draws) from data that test/observability/prometheus.test.ts
// queried from a real Prometheus with the panel's expression. Grafana itself (its server) is not packaged in
// Debian; its panel code is on npm. Bundled with esbuild by that test; window.PANEL is set by the page:
//   { title, unit, from, to, series: [{ name, points: [[ms, value], ...] }] }
import React from 'react';
import { createRoot } from 'react-dom/client';
import { applyFieldOverrides, createTheme, dateTime, FieldType, ThemeContext, toDataFrame } from '@grafana/data';
import { GlobalStyles, PanelChrome, TimeSeries } from '@grafana/ui';

const input = window.PANEL;
const theme = createTheme({ colors: { mode: 'dark' } });
// The defaults Grafana's timeseries panel gives a field (classic palette, lines with a light fill).
const custom = { drawStyle: 'line', lineWidth: 1, fillOpacity: 10, showPoints: 'never', spanNulls: false, axisPlacement: 'auto' };
const frames = input.series.map((s) =>
  toDataFrame({
    name: s.name,
    fields: [
      { name: 'Time', type: FieldType.time, values: s.points.map((p) => p[0]) },
      {
        name: 'Value',
        type: FieldType.number,
        values: s.points.map((p) => p[1]),
        config: { displayNameFromDS: s.name, unit: input.unit, color: { mode: 'palette-classic' }, custom },
      },
    ],
  }),
);
const data = applyFieldOverrides({
  data: frames,
  fieldConfig: { defaults: {}, overrides: [] },
  replaceVariables: (v) => v,
  theme,
  timeZone: 'utc',
});
// As the timeseries panel numbers its series (its prepareGraphableFields): the classic palette picks by index.
let seriesIndex = 0;
for (const frame of data) for (const field of frame.fields) if (field.type === FieldType.number) field.state = { ...field.state, seriesIndex: seriesIndex++ };
const timeRange = { from: dateTime(input.from), to: dateTime(input.to), raw: { from: dateTime(input.from), to: dateTime(input.to) } };
const W = 800;
const H = 320;

function Panel() {
  return (
    <ThemeContext.Provider value={theme}>
      <GlobalStyles />
      <div id="panel" style={{ background: theme.colors.background.canvas, padding: 8, width: W, height: H }}>
        <PanelChrome title={input.title} width={W - 16} height={H - 16}>
          {(w, h) => (
            <TimeSeries
              frames={data}
              width={w}
              height={h}
              timeRange={timeRange}
              timeZone="utc"
              legend={{ showLegend: true, displayMode: 'list', placement: 'bottom', calcs: [] }}
            />
          )}
        </PanelChrome>
      </div>
    </ThemeContext.Provider>
  );
}

createRoot(document.getElementById('root')).render(<Panel />);
