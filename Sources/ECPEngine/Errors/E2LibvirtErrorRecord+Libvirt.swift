import ECPProtocol
import Threading
import Libvirt

extension E2LibvirtErrorRecord {
    /// The record for a libvirt failure: every field libvirt gave, its names, and what the worker
    /// makes of it (category, retryable, a sentence for a person).
    ///
    /// - Parameter action: what was being done, for the summary ("start machine 'web1'").
    init(_ error: LibvirtError, id: String?, op: String?, machine: String?, action: String) {
        let message = LibvirtText.cut(error.message)
        self.init(
            id: id, op: op, machine: machine,
            code: error.code.rawValue, codeName: error.codeName,
            domain: error.domain.rawValue, domainName: error.domainName,
            level: error.levelName, message: message,
            str1: LibvirtText.cut(error.str1), str2: LibvirtText.cut(error.str2), str3: LibvirtText.cut(error.str3),
            int1: error.int1, int2: error.int2,
            category: LibvirtErrorCatalog.category(code: error.code, domain: error.domain, int1: error.int1, message: error.message).rawValue,
            retryable: LibvirtErrorCatalog.isRetryable(code: error.code, domain: error.domain, int1: error.int1, message: error.message),
            summary: LibvirtErrorCatalog.summary(
                code: error.code, codeName: error.codeName, domain: error.domain, message: message,
                int1: error.int1, action: action))
    }
}
