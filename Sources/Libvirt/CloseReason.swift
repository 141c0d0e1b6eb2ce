/// Why libvirt closed a connection (`virConnectCloseReason`), as passed to a close handler.
public enum CloseReason: Int32, Sendable {
    /// A misc I/O error (`VIR_CONNECT_CLOSE_REASON_ERROR`).
    case error = 0
    /// End of file from the server (`VIR_CONNECT_CLOSE_REASON_EOF`).
    case eof
    /// The keepalive timer ran out (`VIR_CONNECT_CLOSE_REASON_KEEPALIVE`).
    case keepalive
    /// The client closed the connection (`VIR_CONNECT_CLOSE_REASON_CLIENT`).
    case client

    /// The lower-case name: `"error"`, `"eof"`, `"keepalive"` or `"client"`.
    public var name: String {
        switch self {
        case .error: return "error"
        case .eof: return "eof"
        case .keepalive: return "keepalive"
        case .client: return "client"
        }
    }
}
