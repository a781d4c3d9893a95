import { xmlUnescape } from './domain-xml.js';

/**
 * A tiny XML reader for what libvirt prints (domain XML, device XML): elements, attributes, text,
 * comments, processing instructions, CDATA. No DTDs, no namespaces resolution (prefixes stay in
 * the names). Enough to walk libvirt's well-formed output without a dependency; anything it does
 * not understand is an error, never a guess.
 */

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** Concatenated, unescaped text directly inside this element. */
  text: string;
  /** Offsets of the element in the source: xml.slice(start, end) is the element. */
  start: number;
  end: number;
}

export class XmlParseError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at offset ${offset}`);
    this.name = 'XmlParseError';
  }
}

const NAME = /[A-Za-z_:][A-Za-z0-9_:.-]*/y;
const ATTR = /\s+([A-Za-z_:][A-Za-z0-9_:.-]*)\s*=\s*(?:"([^"<]*)"|'([^'<]*)')/y;
const TAG_END = /\s*(\/?)>/y;

/** Parse a document (or a fragment with a single root element). */
export function parseXml(xml: string): XmlElement {
  let pos = 0;
  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;

  const skip = (open: string, close: string) => {
    const end = xml.indexOf(close, pos + open.length);
    if (end < 0) throw new XmlParseError(`unterminated ${open}`, pos);
    return end + close.length;
  };

  while (pos < xml.length) {
    const lt = xml.indexOf('<', pos);
    const textEnd = lt < 0 ? xml.length : lt;
    if (textEnd > pos) {
      const text = xml.slice(pos, textEnd);
      const top = stack[stack.length - 1];
      if (top) top.text += xmlUnescape(text);
      else if (text.trim() !== '') throw new XmlParseError('text outside the root element', pos);
      pos = textEnd;
      if (lt < 0) break;
    }
    if (xml.startsWith('<!--', pos)) {
      pos = skip('<!--', '-->');
    } else if (xml.startsWith('<![CDATA[', pos)) {
      const end = xml.indexOf(']]>', pos);
      if (end < 0) throw new XmlParseError('unterminated CDATA', pos);
      const top = stack[stack.length - 1];
      if (!top) throw new XmlParseError('CDATA outside the root element', pos);
      top.text += xml.slice(pos + 9, end);
      pos = end + 3;
    } else if (xml.startsWith('<?', pos)) {
      pos = skip('<?', '?>');
    } else if (xml.startsWith('<!', pos)) {
      throw new XmlParseError('DTDs are not supported', pos);
    } else if (xml.startsWith('</', pos)) {
      NAME.lastIndex = pos + 2;
      const m = NAME.exec(xml);
      const top = stack.pop();
      if (!m || !top || m[0] !== top.name) {
        throw new XmlParseError(`unexpected closing tag ${m?.[0] ?? ''}`, pos);
      }
      const gt = /\s*>/y;
      gt.lastIndex = pos + 2 + m[0].length;
      if (!gt.exec(xml)) throw new XmlParseError('bad closing tag', pos);
      pos = gt.lastIndex;
      top.end = pos;
    } else {
      const start = pos;
      NAME.lastIndex = pos + 1;
      const m = NAME.exec(xml);
      if (!m) throw new XmlParseError('bad tag name', pos);
      const el: XmlElement = { name: m[0], attrs: {}, children: [], text: '', start, end: -1 };
      pos = NAME.lastIndex;
      for (;;) {
        ATTR.lastIndex = pos;
        const a = ATTR.exec(xml);
        if (!a) break;
        el.attrs[a[1] as string] = xmlUnescape(a[2] ?? a[3] ?? '');
        pos = ATTR.lastIndex;
      }
      TAG_END.lastIndex = pos;
      const t = TAG_END.exec(xml);
      if (!t) throw new XmlParseError(`bad tag <${el.name}>`, pos);
      pos = TAG_END.lastIndex;
      const parent = stack[stack.length - 1];
      if (parent) parent.children.push(el);
      else if (root) throw new XmlParseError('more than one root element', start);
      else root = el;
      if (t[1] === '/') el.end = pos;
      else stack.push(el);
    }
  }
  if (stack.length > 0) throw new XmlParseError(`unclosed <${stack[stack.length - 1]!.name}>`, pos);
  if (!root) throw new XmlParseError('no root element', 0);
  return root;
}

/** The first child element called `name`. */
export function child(el: XmlElement | undefined, name: string): XmlElement | undefined {
  return el?.children.find((c) => c.name === name);
}

export function childrenNamed(el: XmlElement | undefined, name: string): XmlElement[] {
  return el ? el.children.filter((c) => c.name === name) : [];
}
