/// The page, its script and its style, served from memory: one binary, nothing to install
/// beside it, nothing fetched from elsewhere.
enum WebAssets {
    static let indexHTML: StaticString = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>ECP console</title>
        <link rel="stylesheet" href="/style.css">
        <script src="/app.js" defer></script>
        </head>
        <body>
        <header class="top">
          <h1>ECP console</h1>
          <span id="connection" class="badge neutral">connecting…</span>
          <span class="spacer"></span>
          <label class="filter">Filter <input id="filter" type="search" placeholder="machine name" autocomplete="off"></label>
          <span id="who"></span>
          <button id="logout" type="button" hidden>Log out</button>
        </header>
        <main>
          <section id="hosts" aria-label="Hosts"></section>
          <section class="panel" aria-labelledby="errors-title">
            <h2 id="errors-title">Errors <span id="error-count" class="count">0</span></h2>
            <p class="hint">Published by the workers on their <code>error.</code> topics: failed commands from any client, restores. Newest first.</p>
            <table id="errors" class="list">
              <thead><tr><th>Time</th><th>Host</th><th>Op</th><th>Machine</th><th>Summary</th><th></th></tr></thead>
              <tbody></tbody>
            </table>
          </section>
          <section class="panel" aria-labelledby="commands-title">
            <h2 id="commands-title">Commands from this console</h2>
            <table id="commands" class="list">
              <thead><tr><th>Time</th><th>By</th><th>Host</th><th>Machine</th><th>Action</th><th>Outcome</th><th></th></tr></thead>
              <tbody></tbody>
            </table>
          </section>
        </main>
        <dialog id="error-dialog" aria-labelledby="dialog-summary">
          <p id="dialog-summary" class="summary"></p>
          <dl class="facts">
            <dt>Layer</dt><dd id="dialog-layer"></dd>
            <dt>Category</dt><dd id="dialog-category"></dd>
            <dt>Retrying</dt><dd id="dialog-retry"></dd>
            <dt>Command</dt><dd id="dialog-command"></dd>
          </dl>
          <details id="dialog-details">
            <summary>Details</summary>
            <table id="dialog-fields" class="fields"><tbody></tbody></table>
          </details>
          <form method="dialog"><button id="dialog-close" autofocus>Close</button></form>
        </dialog>
        <div id="toasts" role="status" aria-live="polite"></div>
        </body>
        </html>

        """#

    static let loginHTML: StaticString = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>ECP console: log in</title>
        <link rel="stylesheet" href="/style.css">
        </head>
        <body class="login">
        <form class="login-box" method="post" action="/login">
          <h1>ECP console</h1>
          <label for="token">Token</label>
          <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
          <button type="submit">Log in</button>
        </form>
        </body>
        </html>

        """#

    static let loginFailedHTML: StaticString = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>ECP console: log in</title>
        <link rel="stylesheet" href="/style.css">
        </head>
        <body class="login">
        <form class="login-box" method="post" action="/login">
          <h1>ECP console</h1>
          <p class="login-error">That token is not known.</p>
          <label for="token">Token</label>
          <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
          <button type="submit">Log in</button>
        </form>
        </body>
        </html>

        """#
}
