import NIOCore
import NIOHTTP1
import NIOPosix

/// One HTTP response as the scraper got it.
struct ScrapeResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType: String?
    var body: ByteBuffer
    /// When the end of the response arrived, on the bench's monotonic clock (``Clock/nanos()``),
    /// read on the event loop that received it.
    var receivedAt: UInt64
}

/// Why a request got no response.
enum ScrapeError: Error, CustomStringConvertible {
    case connectionClosed
    case timedOut(seconds: Double)
    case busy

    var description: String {
        switch self {
        case .connectionClosed: "the connection closed before the response was complete"
        case .timedOut(let seconds): "no complete response within \(seconds) s"
        case .busy: "a request is already in flight on this connection"
        }
    }
}

/// A small HTTP/1.1 client on SwiftNIO for `GET` of one host, one request at a time on one
/// keep-alive connection: a connection is opened for the first request and again only when the
/// server has closed the last one. Used from one thread, which waits for each response.
final class ScrapeClient {
    let host: String
    let port: Int
    /// Connections opened so far: 1 when every request reused the first.
    private(set) var connections = 0

    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private var channel: (any Channel)?

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    deinit { close() }

    /// `GET path`, and the whole response. `startedAt` is when the request began: before the
    /// connect when one was needed, else before the write.
    func get(_ path: String, timeoutSeconds: Double) throws -> (response: ScrapeResponse, startedAt: UInt64) {
        let startedAt = Clock.nanos()
        let channel = try connect(timeoutSeconds: timeoutSeconds)
        let promise = channel.eventLoop.makePromise(of: ScrapeResponse.self)
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(host):\(port)")
        headers.add(name: "Accept", value: "text/plain")
        headers.add(name: "User-Agent", value: "ecp-bench")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
        // A response that does not come closes the connection, which fails the request.
        let timeout = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(Clock.ns(seconds: timeoutSeconds)))) {
            promise.fail(ScrapeError.timedOut(seconds: timeoutSeconds))
            channel.close(promise: nil)
        }
        channel.writeAndFlush(ResponseCollector.Request(head: head, promise: promise), promise: nil)
        defer { timeout.cancel() }
        do {
            return (try promise.futureResult.wait(), startedAt)
        } catch {
            channel.close(promise: nil)
            self.channel = nil
            throw error
        }
    }

    /// Closes the connection and stops the event loop.
    func close() {
        if let channel { try? channel.close().wait() }
        channel = nil
        try? group.syncShutdownGracefully()
    }

    /// The open connection, or a new one.
    @discardableResult
    func connect(timeoutSeconds: Double) throws -> any Channel {
        if let channel, channel.isActive { return channel }
        channel = nil
        let connected = try ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(Int64(Clock.ns(seconds: min(timeoutSeconds, 10)))))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector())
                }
            }
            .connect(host: host, port: port)
            .wait()
        connections += 1
        channel = connected
        return connected
    }
}

/// Writes a request's head and end, and collects its response into the request's promise. A
/// connection that closes or fails first fails the promise.
private final class ResponseCollector: ChannelDuplexHandler {
    struct Request: Sendable {
        var head: HTTPRequestHead
        var promise: EventLoopPromise<ScrapeResponse>
    }

    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Request
    typealias OutboundOut = HTTPClientRequestPart

    private var pending: EventLoopPromise<ScrapeResponse>?
    private var head: HTTPResponseHead?
    private var body: ByteBuffer?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        guard pending == nil else {
            request.promise.fail(ScrapeError.busy)
            promise?.fail(ScrapeError.busy)
            return
        }
        pending = request.promise
        head = nil
        body = nil
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
        case .body(var part):
            if body == nil {
                body = part
            } else {
                body!.writeBuffer(&part)
            }
        case .end:
            let at = Clock.nanos()
            guard let promise = pending, let head else { return }
            pending = nil
            promise.succeed(
                ScrapeResponse(
                    status: head.status, contentType: head.headers.first(name: "Content-Type"),
                    body: body ?? ByteBuffer(), receivedAt: at))
            self.head = nil
            body = nil
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(ScrapeError.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.close(promise: nil)
    }

    private func fail(_ error: any Error) {
        pending?.fail(error)
        pending = nil
    }
}
