extension WebAssets {
    static let styleCSS: StaticString = #"""
        :root {
          --bg: #f4f5f7; --card: #fff; --ink: #1d2330; --muted: #5d6575; --line: #dde1e8;
          --ok: #1f7a3f; --ok-bg: #e3f4e8; --bad: #b42318; --bad-bg: #fdecea; --warn: #8a5a00; --warn-bg: #fff4d6;
          --idle: #4a5261; --idle-bg: #eceef2; --accent: #2450b8;
          font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
          font-size: 14px; color: var(--ink); background: var(--bg);
        }
        body { margin: 0; }
        header.top { display: flex; align-items: center; gap: 12px; padding: 10px 20px; background: #1d2330; color: #fff; position: sticky; top: 0; z-index: 2; }
        header.top h1 { font-size: 17px; margin: 0; font-weight: 600; }
        header.top .spacer { flex: 1; }
        header.top .filter input { margin-left: 6px; padding: 3px 6px; border-radius: 4px; border: 1px solid #555; }
        main { padding: 16px 20px 60px; display: grid; gap: 16px; }
        #hosts { display: grid; gap: 16px; grid-template-columns: repeat(auto-fill, minmax(min(100%, 820px), 1fr)); }
        .host, .panel { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; min-width: 0; }
        .host > header { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; margin-bottom: 8px; }
        .host h2, .panel h2 { font-size: 16px; margin: 0; }
        .host .meta { color: var(--muted); font-size: 12px; }
        .host .reason { color: var(--bad); font-size: 12px; }
        .host.down { border-color: var(--bad); }
        .host.down table.machines { opacity: .55; }
        .host > header .spacer { flex: 1; }
        .badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
        .badge.up, .badge.live { background: var(--ok-bg); color: var(--ok); }
        .badge.down { background: var(--bad-bg); color: var(--bad); }
        .badge.neutral { background: var(--idle-bg); color: var(--idle); }
        .count { font-size: 12px; color: var(--muted); font-weight: normal; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); vertical-align: middle; }
        th { font-size: 12px; color: var(--muted); font-weight: 600; }
        th.num { text-align: right; }
        table.list td:nth-child(-n+3) { white-space: nowrap; }
        td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
        td.name { font-weight: 600; overflow-wrap: anywhere; }
        .machines-wrap { max-height: 520px; overflow: auto; }
        .state { display: inline-block; min-width: 64px; padding: 1px 6px; border-radius: 4px; font-size: 12px; text-align: center; }
        .state.running { background: var(--ok-bg); color: var(--ok); }
        .state.paused, .state.pmsuspended, .state.blocked { background: var(--warn-bg); color: var(--warn); }
        .state.shutoff, .state.shutdown, .state.nostate, .state.unknown { background: var(--idle-bg); color: var(--idle); }
        .state.crashed, .state.undefined { background: var(--bad-bg); color: var(--bad); }
        tr.pending .state { outline: 2px dashed var(--accent); outline-offset: 1px; }
        tr.hidden { display: none; }
        td.actions { white-space: nowrap; }
        button { font: inherit; font-size: 12px; padding: 2px 8px; border: 1px solid #b8bfcc; border-radius: 4px; background: #fff; color: var(--ink); cursor: pointer; }
        button:hover { border-color: var(--accent); color: var(--accent); }
        button:disabled { opacity: .5; cursor: default; }
        button.danger:hover { border-color: var(--bad); color: var(--bad); }
        td.actions button { margin-right: 2px; }
        details.restore { margin-top: 10px; }
        details.restore summary { cursor: pointer; color: var(--muted); }
        .action-failed { color: var(--bad); font-weight: 600; }
        .action-started, .action-resumed { color: var(--ok); }
        table.list td.summary { overflow-wrap: anywhere; }
        table.list tbody tr:nth-child(n+201) { display: none; }
        .hint { color: var(--muted); font-size: 12px; margin: 4px 0 8px; }
        .outcome-ok { color: var(--ok); }
        .outcome-failed, .outcome-refused, .outcome-no_reply, .outcome-not_sent { color: var(--bad); }
        .outcome-sent { color: var(--muted); }
        dialog { border: 1px solid var(--line); border-radius: 10px; padding: 18px 20px; max-width: 760px; width: calc(100% - 40px); box-shadow: 0 12px 40px rgba(0,0,0,.25); }
        dialog::backdrop { background: rgba(20,24,33,.45); }
        dialog .summary { font-size: 16px; font-weight: 600; color: var(--bad); margin: 0 0 12px; overflow-wrap: anywhere; }
        dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 0 0 12px; }
        dl.facts dt { color: var(--muted); }
        dl.facts dd { margin: 0; overflow-wrap: anywhere; }
        table.fields td:first-child { color: var(--muted); white-space: nowrap; width: 1%; }
        table.fields td { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; overflow-wrap: anywhere; white-space: pre-wrap; }
        dialog form { margin-top: 14px; text-align: right; }
        #toasts { position: fixed; right: 16px; bottom: 16px; display: grid; gap: 8px; z-index: 3; }
        .toast { background: #1d2330; color: #fff; padding: 8px 12px; border-radius: 6px; max-width: 420px; box-shadow: 0 6px 20px rgba(0,0,0,.25); overflow-wrap: anywhere; }
        body.login { display: grid; place-items: center; min-height: 100vh; }
        .login-box { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 24px; display: grid; gap: 10px; min-width: 300px; }
        .login-box h1 { font-size: 18px; margin: 0 0 6px; }
        .login-box input { padding: 6px 8px; font: inherit; }
        .login-error { color: var(--bad); margin: 0; }
        code { font-size: 12px; }

        """#
}
