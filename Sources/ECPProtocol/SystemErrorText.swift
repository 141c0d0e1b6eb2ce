import FoundationEssentials
import Glibc

extension Error {
    /// What went wrong in a file operation, for a person: the system's text for the `errno`
    /// behind it (`No such file or directory`), else the error's own description.
    public var systemDescription: String {
        if let posix = (self as? POSIXError) ?? ((self as? CocoaError)?.underlying as? POSIXError) {
            return String(cString: strerror(posix.code.rawValue))
        }
        if let cocoa = self as? CocoaError {
            return "file operation failed (error \(cocoa.code.rawValue))"
        }
        return String(describing: self)
    }
}
