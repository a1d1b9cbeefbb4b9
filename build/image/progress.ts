// The image build's progress events and their plain line renderer (as the payload build's).
export interface ImageProgressEvent {
  step: string;
  message: string;
  done?: number;
  total?: number;
}

export type ImageProgressListener = (event: ImageProgressEvent) => void;

/** One line per event on stderr (a hook's and mmdebstrap's own lines included), so a long build shows it is alive. */
export function imageLineRenderer(write: (line: string) => void = (line) => process.stderr.write(line)): ImageProgressListener {
  return (event) => write(`image: ${event.step}: ${event.message}\n`);
}
