import CZeroMQ

/// The ZeroMQ socket patterns this module offers (the stable, non-draft ones).
public enum SocketType: Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Publisher: sends to every matching subscriber, never blocks, drops past its high-water mark.
    case pub
    /// Subscriber: receives what matches one of its subscription prefixes.
    case sub
    /// Router: prefixes each received message with the sender's identity frame and routes
    /// outgoing messages by their first frame.
    case router
    /// Dealer: asynchronous request/reply peer, round-robins outgoing messages.
    case dealer
    /// Request: strict send/receive/send/… client; adds an empty delimiter frame on the wire.
    case req
    /// Reply: strict receive/send/… server.
    case rep
    /// Push: pipeline producer, round-robins to pullers.
    case push
    /// Pull: pipeline consumer, fair-queues from pushers.
    case pull
    /// Pair: exclusive one-to-one connection.
    case pair

    /// The `ZMQ_*` constant for `zmq_socket`.
    var rawValue: Int32 {
        switch self {
        case .pub: return ZMQ_PUB
        case .sub: return ZMQ_SUB
        case .router: return ZMQ_ROUTER
        case .dealer: return ZMQ_DEALER
        case .req: return ZMQ_REQ
        case .rep: return ZMQ_REP
        case .push: return ZMQ_PUSH
        case .pull: return ZMQ_PULL
        case .pair: return ZMQ_PAIR
        }
    }

    /// The libzmq name, upper case: `"PUB"`, `"ROUTER"`, …
    public var description: String {
        switch self {
        case .pub: return "PUB"
        case .sub: return "SUB"
        case .router: return "ROUTER"
        case .dealer: return "DEALER"
        case .req: return "REQ"
        case .rep: return "REP"
        case .push: return "PUSH"
        case .pull: return "PULL"
        case .pair: return "PAIR"
        }
    }
}
