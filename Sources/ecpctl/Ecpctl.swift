import ArgumentParser

/// The root command: `ecpctl <subcommand>`, the operator's client of an ECP machine worker.
@main
struct Ecpctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ecpctl",
        abstract: "Operate an ECP machine worker: send it machine commands, follow its events, make CURVE keys.",
        discussion: """
            Machine commands go to the worker's control socket (ROUTER) and wait for the \
            single reply; `tail` follows the events socket (PUB) and fills gaps from the control \
            socket's `replay`. Endpoints follow the CZMQ \
            convention: `>` connects (the default for ecpctl), `@` binds. Shared options may \
            come before or after the subcommand. Defaults can come from the environment: \
            ECPCTL_CONTROL, ECPCTL_EVENTS, ECPCTL_TIMEOUT_MS, ECPCTL_CURVE_SERVER_KEY, \
            ECPCTL_CURVE_KEY; a command-line option wins.

            Exit status:
              0   success (tail: --count reached, --duration-ms over, or SIGINT)
              1   the worker answered ok: false; its error summary is printed first
              2   the worker refused the request (request_error)
              3   no reply within --timeout-ms (tail: too few messages in time)
              4   replay: some asked messages are gone from the worker's memory (truncated)
              5   host-stop: one or more machines failed to stop
              64  usage error: a bad option, endpoint, key or input file
              70  internal error: ZeroMQ failed, or an unreadable reply

            Text from the wire (machine names, messages) is printed with control \
            characters escaped (\\n, \\u001b, ...), never raw.

            Examples:
              ecpctl start web1
              ecpctl --control '>tcp://10.0.0.5:5557' list
              ecpctl tail error.
            """,
        subcommands: [
            StartCommand.self, ShutdownCommand.self, DestroyCommand.self, RebootCommand.self,
            SuspendCommand.self, ResumeCommand.self, DefineCommand.self, UndefineCommand.self,
            StatusCommand.self, ListCommand.self, StatsCommand.self, PingCommand.self, RestoreCommand.self,
            ReportCommand.self, PolicyCommand.self, HostStopCommand.self, SendCommand.self, TailCommand.self,
            ReplayCommand.self, KeygenCommand.self,
        ])

    /// The shared options, accepted before the subcommand too: `ecpctl --json status web1`
    /// is `ecpctl status --json web1`.
    @OptionGroup var options: SharedOptions
}
