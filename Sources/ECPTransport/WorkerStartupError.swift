/// The worker could not start: a bad option, or a socket that could not be opened.
public struct WorkerStartupError: Error, CustomStringConvertible {
    public var message: String

    public init(message: String) {
        self.message = message
    }

    public var description: String { message }
}
